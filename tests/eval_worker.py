"""Sharded evaluation under 1 or N processes (used by test_evaluation's invariance test).

Usage: python eval_worker.py MODEL_DIR BACKEND OUT_JSON   (or under torchrun)
"""

import json
import os
import sys

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def main():
    model, backend, out = sys.argv[1:4]
    import torch.distributed as dist

    from understand_r1_zero.actor import make_actor
    from understand_r1_zero.data import load_eval
    from understand_r1_zero.evaluation import evaluate
    from understand_r1_zero.learner import init_distributed

    rank, world, _ = init_distributed(cpu=True)
    tasks = load_eval("synthetic", "", "problem", "answer", limit=21)  # 21: ranks get unequal shares
    tasks["again"] = tasks["synthetic"][3:10]  # a second task, so rows must be regrouped by task
    actor = make_actor(backend, model, seed=rank, gpu_memory_utilization=0.05)
    rows, summary = evaluate(actor, tasks, template="qwen_math", max_tokens=48, chunk_size=8,
                             grade_workers=0, rank=rank, world_size=world)
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"rows": rows, "summary": summary}, f)
    actor.close()
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
