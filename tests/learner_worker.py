"""Run one Learner update on a fixed batch and save the resulting weights (used by test_learner).

Usage: python learner_worker.py MODEL_DIR OUT ALGO ZERO_STAGE MICRO_BATCH [OPTION=VALUE ...]
(extra TrainConfig fields as integers, e.g. share_prompts=0 gradient_checkpointing=1 lora_rank=4). The batch is two
prompts of different lengths x G=4 responses of varied lengths, as a GRPO step has. Under
torchrun each rank takes its contiguous share of the same global batch.
"""

import os
import sys

os.environ.setdefault("DS_ACCELERATOR", "cpu")

import torch  # noqa: E402


def main():
    model_dir, out, algo, zero, micro = sys.argv[1:6]
    extra = {k: int(v) for k, v in (a.split("=") for a in sys.argv[6:])}  # TrainConfig coerces 0/1 to bool
    mask_last = extra.pop("mask_last", False)  # exclude the last response from the loss (--truncated mask)
    from understand_r1_zero.config import TrainConfig
    from understand_r1_zero.learner import Learner, init_distributed
    from understand_r1_zero.rollout import Sample

    rank, world, _ = init_distributed(cpu=True)
    N, G = 8, 4
    cfg = TrainConfig(pretrain=model_dir, algo=algo, zero_stage=int(zero), micro_batch_size=int(micro),
                      rollout_batch_size=N // G, num_samples=G, train_batch_size=N, generate_max_length=12,
                      learning_rate=1e-2, max_norm=0.05, max_steps=1, prompt_data="unused", **extra)
    g = torch.Generator().manual_seed(0)
    samples = []
    prompts = [torch.randint(3, 500, (n,), generator=g).tolist() for n in (3, 6)]
    for i in range(N):  # G responses per prompt, of varied lengths
        r = torch.randint(3, 500, (1 + (5 * i) % 11,), generator=g).tolist()
        samples.append(Sample(prompts[i // G], r, "", [0.0] * len(r), "stop"))
    adv = torch.tensor([1.0, -0.5, 0.25, -0.75, 0.5, 0.0, -1.0, 1.5])
    mask = torch.ones(N)
    if mask_last:
        mask[-1] = 0.0
    per = N // world
    mine = slice(rank * per, (rank + 1) * per)
    learner = Learner(cfg, model_dir, world_size=world, device=torch.device("cpu"), pad_id=0)
    stats = learner.train(samples[mine], adv[mine], mask[mine], seed=0)
    sd = learner.full_state_dict(rank)  # under LoRA: merged, under the base model's names
    opt = learner.engine.optimizer  # (ZeRO-0: the client AdamW itself; its state's size is checked)
    opt_numel = sum(t.numel() for s in opt.state.values() for t in s.values() if torch.is_tensor(t) and t.ndim) \
        if isinstance(opt, torch.optim.AdamW) else None
    adapter = learner.adapter_state_dict(rank)
    if rank == 0:
        torch.save({"state": sd, "stats": stats, "sizes": learner.sizes, "opt_numel": opt_numel,
                    "adapter": adapter}, out)
    # Exit together and tear gloo down explicitly: a rank leaving while its peer still talks to it
    # aborts in gloo's threads ("terminate called without an active exception").
    import torch.distributed as dist
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
