"""The recipe path on one GPU, with its figures (driven by scripts/gpu_check.sh).

Runs ``train_zero_math.py`` as the recipes do -- bf16, gradient checkpointing, ZeRO-2 then
ZeRO-3, --vllm_sleep True, an evaluation at step 0 and at the end -- on a random-init model of
Qwen2.5-Math-1.5B's real shape (its config.json; the tiny kit's tokenizer, smaller than the
embedding as Qwen's own is). Each stage runs 2 RL steps, evaluates and saves, then a second
launch resumes from that checkpoint for one more step. The actor is transformers' (the GPU
machine has no vLLM). Then it prints, per stage: peak GPU memory, the step split into
generate / grade / train / sync / other, generated and learner tokens/s, and MFU against
``--peak_tflops`` (790 TFLOP/s: the H200's measured dense bf16 peak).

MFU = 6 N (prompt + response tokens trained) / train seconds / peak (``train/seq_tokens``:
under gradient checkpointing each row forwards its own prompt, so this is the real count; the
recompute's extra forward is not counted, as is usual for MFU).

``--preset tiny`` runs the same script on CPU in seconds (tests/test_gpu_check.py), so the
script itself is tested where no GPU is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SHAPES = {
    # Qwen2.5-Math-1.5B's config.json (benchmarks/bench_learner.py uses the same shape)
    "qwen2.5-math-1.5b": dict(hidden_size=1536, num_layers=28, num_heads=12, num_kv_heads=2,
                              intermediate_size=8960, vocab_size=151936,
                              max_position_embeddings=4096),
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128,
                 vocab_size=640, max_position_embeddings=1024),
}
# (rollout prompts, samples, response tokens, micro-batch, eval problems, eval tokens)
SIZES = {"qwen2.5-math-1.5b": (16, 8, 256, 16, 64, 128), "tiny": (4, 4, 16, 8, 8, 16)}


def build_model(preset: str, out: str, device: str) -> tuple[str, int]:
    import torch
    from transformers import GenerationConfig, Qwen2ForCausalLM

    from understand_r1_zero.tiny import build_tokenizer, save_model_dir, tiny_config

    s = SHAPES[preset]
    tok = build_tokenizer()
    stop = [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    cfg = tiny_config(s["vocab_size"], hidden_size=s["hidden_size"], num_layers=s["num_layers"],
                      num_heads=s["num_heads"], num_kv_heads=s["num_kv_heads"],
                      intermediate_size=s["intermediate_size"],
                      max_position_embeddings=s["max_position_embeddings"], eos_token_id=stop,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())  # the tied head counted once
    save_model_dir(model.cpu(), tok, out, GenerationConfig(eos_token_id=stop, pad_token_id=tok.pad_token_id))
    return out, n


def train(model: str, run: str, zero: int, max_steps: int, preset: str, cpu: bool) -> float:
    P, G, T, mb, n_eval, T_eval = SIZES[preset]
    flags = dict(pretrain=model, prompt_data="synthetic", eval_data="synthetic", eval_limit=n_eval,
                 eval_max_length=T_eval, eval_steps=0, rollout_batch_size=P, num_samples=G,
                 generate_max_length=T, train_batch_size=P * G, micro_batch_size=mb, max_steps=max_steps,
                 learning_rate=1e-6, actor="hf", actor_threads=1, vllm_sleep=True, zero_stage=zero, bf16=True,
                 gradient_checkpointing=True, share_prompts=True, resume="auto", use_wb=False,
                 grade_workers=2, save_path=run, progress=False)
    cmd = [sys.executable, os.path.join(ROOT, "train_zero_math.py")] + \
        [x for k, v in flags.items() for x in (f"--{k}", str(v))]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if cpu:
        env.update(DS_ACCELERATOR="cpu", CUDA_VISIBLE_DEVICES="")
    t = time.time()
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        sys.stderr.write(r.stdout[-6000:] + r.stderr[-6000:])
        raise SystemExit(f"gpu_check: training failed (ZeRO-{zero}, --max_steps {max_steps}), rc {r.returncode}")
    return time.time() - t


def report(run: str, n_params: int, peak_tflops: float, launches: list[float]) -> dict:
    from understand_r1_zero import schema

    rows = [r for r in schema.read_metrics(run) if r["step"] > 0]
    rollouts = schema.read_rollouts(run)
    assert [r["step"] for r in rows] == [1, 2, 3], [r["step"] for r in rows]
    steps = []
    for r in rows:
        gen_tok = sum(x["length"] for x in rollouts if x["step"] == r["step"])
        parts = {k: r[f"time/{k}_s"] for k in ("generate", "grade", "train", "sync")}
        other = r["time/step_s"] - sum(parts.values())  # logging, rollouts, eval at the last step
        steps.append({
            "step": r["step"], "step_s": r["time/step_s"], **{f"{k}_s": v for k, v in parts.items()},
            "other_s": other, "generated_tok_s": gen_tok / parts["generate"],
            "learner_tok_s": r["train/seq_tokens"] / parts["train"],
            "mfu": 6 * n_params * r["train/seq_tokens"] / parts["train"] / (peak_tflops * 1e12),
            "peak_mem_gib": r["mem/peak_gib"], "resumed": r["step"] == 3})
    return {"steps": steps, "launch_s": launches,
            "eval_accuracy": {r["step"]: r["eval/average/accuracy"] for r in schema.read_metrics(run)
                              if "eval/average/accuracy" in r}}


def main(preset: str = "qwen2.5-math-1.5b", peak_tflops: float = 790.0, out: str = ""):
    import torch

    cpu = not torch.cuda.is_available()
    if cpu and preset != "tiny":
        raise SystemExit("gpu_check: no CUDA device visible; `--preset tiny` runs the script on CPU")
    t0 = time.time()
    res = {"preset": preset, "device": "cpu" if cpu else torch.cuda.get_device_name(0),
           "torch": torch.__version__, "peak_tflops": peak_tflops, "stages": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model, n = build_model(preset, os.path.join(tmp, "model"), "cpu" if cpu else "cuda")
        res["params"] = n
        print(f"gpu_check: {preset} random init, {n / 1e9:.3f}B params, bf16; built in {time.time() - t0:.0f} s",
              flush=True)
        for zero in (2, 3):
            run = os.path.join(tmp, f"zero{zero}")
            launches = [train(model, run, zero, 2, preset, cpu), train(model, run, zero, 3, preset, cpu)]
            res["stages"][f"zero{zero}"] = report(run, n, peak_tflops, launches)
    res["total_s"] = time.time() - t0
    print(f"\n{'stage':<7}{'step':>5}{'step s':>8}{'gen':>7}{'grade':>7}{'train':>7}{'sync':>7}{'other':>7}"
          f"{'gen tok/s':>11}{'lrn tok/s':>11}{'MFU':>7}{'peak GiB':>10}")
    for stage, r in res["stages"].items():
        for s in r["steps"]:
            print(f"{stage:<7}{s['step']:>5}{s['step_s']:>8.1f}{s['generate_s']:>7.1f}{s['grade_s']:>7.2f}"
                  f"{s['train_s']:>7.1f}{s['sync_s']:>7.2f}{s['other_s']:>7.1f}{s['generated_tok_s']:>11,.0f}"
                  f"{s['learner_tok_s']:>11,.0f}{100 * s['mfu']:>6.1f}%{s['peak_mem_gib']:>10.1f}"
                  + ("  (resumed)" if s["resumed"] else ""))
    print(f"total {res['total_s']:.0f} s; MFU against {peak_tflops:g} TFLOP/s; step 3 is the resumed launch")
    path = out or os.path.join(os.environ.get("OUT") or os.path.join(ROOT, "benchmarks", "results"), "gpu.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    import fire

    fire.Fire(main)
