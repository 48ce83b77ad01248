"""Learner throughput: trained tokens/s, peak memory and MFU of ``Learner.train`` for a model config.

    python benchmarks/bench_learner.py                                   # CPU: small configs, fp32
    python benchmarks/bench_learner.py --preset qwen2.5-math-1.5b --bf16 --zero_stage 2 \\
        --gradient_checkpointing --micro_batch_size 8 --batch 64 --prompt_len 256 --response_len 1024
    python benchmarks/bench_learner.py --preset small --micro_batch_size 16,32,64
    python benchmarks/bench_learner.py --preset demo --group 1,8    # with/without the shared-prompt pass
    python benchmarks/bench_learner.py --preset small --micro_batch_size 8 --lora_rank 16 \
        --out benchmarks/results/learner_lora.json                  # LoRA (all-linear) vs full: run each alone

The model is a random-init Qwen2 of the preset's shape, saved to a temp dir and loaded by the real
``Learner`` (DeepSpeed engine, our loss, our normalisers); each timed call is one
``learner.train`` over ``--batch`` responses of fixed prompt/response length (one optimizer
update, ``batch / micro_batch_size`` micro-batches). ``--group G``: G consecutive samples share
a prompt, as in a GRPO step; the learner then runs each distinct prompt of a micro-batch once
(``--share_prompts``). With G = 1 (the default) every sample has its own prompt and the figures
are the plain per-row forward/backward. Reported per (micro-batch size, G):

* tokens/s: response tokens (what ``train/tokens`` logs), all tokens (prompt + response of every
  sample) and forwarded tokens (what the forward/backward processes: each distinct prompt of a
  micro-batch once when shared; equal to all tokens for G = 1);
* peak memory: RSS sampled during the timed calls (CPU), ``torch.cuda.max_memory_allocated`` (GPU);
* MFU = k * N * forwarded_tokens_per_s / peak, k = 6 (forward + backward), 8 with gradient checkpointing
  (one more forward); N = unique parameters (a tied head counted once: its matmul is the cost the
  embedding lookup does not have); attention-score FLOPs are left out. ``--peak_tflops`` gives the
  device peak; without it the script measures a dense matmul peak in the run's dtype. Under
  ``--lora_rank`` the frozen weights get no weight gradient, so 6N overstates the work (about 4N).

Memory and tokens/s of LoRA against full fine-tuning: one invocation each (RSS is the process's,
and freed memory stays in its heap), as the README's table does.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Poller, load1, machine, median, wait_for_quiet, write_json  # noqa: E402

PRESETS = {
    # the demo's synthetic base model (synthetic.BaseModelConfig)
    "demo": dict(hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=512,
                 vocab_size=512),
    "small": dict(hidden_size=512, num_layers=8, num_heads=8, num_kv_heads=2, intermediate_size=2048,
                  vocab_size=8192),
    # Qwen2.5-Math-1.5B's real shape (its config.json), random init
    "qwen2.5-math-1.5b": dict(hidden_size=1536, num_layers=28, num_heads=12, num_kv_heads=2,
                              intermediate_size=8960, vocab_size=151936, rope_theta=10000.0,
                              max_position_embeddings=4096),
}


def _ints(x) -> list[int]:
    return [int(v) for v in (x.split(",") if isinstance(x, str) else
                             (x if isinstance(x, (list, tuple)) else [x]))]


def save_random_model(spec: dict, out_dir: str) -> tuple[str, int]:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=spec["vocab_size"], hidden_size=spec["hidden_size"],
                      intermediate_size=spec["intermediate_size"], num_hidden_layers=spec["num_layers"],
                      num_attention_heads=spec["num_heads"], num_key_value_heads=spec["num_kv_heads"],
                      max_position_embeddings=spec.get("max_position_embeddings", 4096),
                      rope_theta=spec.get("rope_theta", 10000.0), tie_word_embeddings=True,
                      bos_token_id=0, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    n = sum(p.numel() for p in model.parameters())  # parameters() dedups the tied head
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir, n


def matmul_peak_tflops(dtype, device, size: int = 2048, seconds: float = 3.0) -> float:
    """Best dense matmul rate (TFLOP/s) in ``dtype`` over ``seconds``, with the learner's threads."""
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    best, t_end = 0.0, time.time() + seconds
    while time.time() < t_end:
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        sync()
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - t) / 1e12)
    return best


class PeakRSS(Poller):
    """Max resident set size of this process, sampled every 10 ms."""

    every_s = 0.01

    def __init__(self):
        import psutil

        self.proc, self.peak = psutil.Process(), 0

    def poll(self):
        self.peak = max(self.peak, self.proc.memory_info().rss)


def fake_samples(n: int, prompt_len: int, response_len: int, vocab: int, group: int = 1, seed: int = 0):
    """``n`` samples of random tokens; each run of ``group`` consecutive samples shares a prompt."""
    import random

    from understand_r1_zero.rollout import Sample

    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % group == 0:
            p = [rng.randrange(1, vocab) for _ in range(prompt_len)]
        r = [rng.randrange(1, vocab) for _ in range(response_len)]
        out.append(Sample(prompt_ids=p, response_ids=r, text="", logprobs=[0.0] * response_len,
                          finish_reason="length"))
    return out


def optimizer_state_bytes(opt) -> int:
    """Bytes of the optimizer's state tensors (Adam's two moments per trainable parameter), exact:
    RSS on CPU is dominated by the libraries and the heap, and hides a few hundred MB."""
    import torch

    inner = getattr(opt, "optimizer", opt)  # DeepSpeed's wrappers hold the torch optimizer
    return sum(v.numel() * v.element_size() for st in inner.state.values() for v in st.values()
               if torch.is_tensor(v) and v.dim() > 0)


def bench_one(model_dir: str, n_params: int, spec: dict, *, mb: int, group: int, batch: int, prompt_len: int,
              response_len: int, bf16: bool, zero_stage: int, gradient_checkpointing: bool,
              repeats: int, warmup: int, peak_tflops: float, device, lora_rank: int = 0) -> dict:
    import torch

    from understand_r1_zero.config import TrainConfig
    from understand_r1_zero.learner import Learner
    from understand_r1_zero.rollout import collate_grouped

    cfg = TrainConfig(pretrain=model_dir, rollout_batch_size=batch // 8, num_samples=8, micro_batch_size=mb,
                      generate_max_length=response_len, zero_stage=zero_stage, bf16=bf16,
                      gradient_checkpointing=gradient_checkpointing, max_steps=warmup + repeats,
                      eval_data="", lora_rank=lora_rank)
    cfg.check_world(1)
    learner = Learner(cfg, model_dir, world_size=1, device=device, pad_id=0)
    samples = fake_samples(batch, prompt_len, response_len, spec["vocab_size"], group=group)
    if learner.share_prompts:  # each micro-batch runs its distinct prompts once
        fwd_tok = sum(collate_grouped(samples[i:i + mb], 0)["prompt_ids"].numel() for i in range(0, batch, mb))
        fwd_tok += batch * response_len
    else:
        fwd_tok = batch * (prompt_len + response_len)
    adv = torch.randn(batch)
    mask = torch.ones(batch)
    cuda = device.type == "cuda"
    for i in range(warmup):
        learner.train(samples, adv, mask, seed=i)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, load_start = [], load1()
    with PeakRSS() as rss:
        for i in range(repeats):
            t = time.perf_counter()
            learner.train(samples, adv, mask, seed=100 + i)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    dt = median(times)
    all_tok = batch * (prompt_len + response_len)
    k = 8 if gradient_checkpointing else 6
    tps = fwd_tok / dt
    res = {"micro_batch_size": mb, "group": group, "shared_prompts": learner.share_prompts and group > 1,
           "batch": batch, "seconds_per_update": dt, "seconds_all": times,
           "response_tokens_per_s": batch * response_len / dt, "all_tokens_per_s": all_tok / dt,
           "forwarded_tokens_per_s": tps,
           "achieved_tflops": k * n_params * tps / 1e12, "mfu": k * n_params * tps / (peak_tflops * 1e12),
           "peak_rss_gib": rss.peak / 2**30, "load1_start": load_start, "load1_end": load1(),
           "lora_rank": lora_rank, "trainable_params": learner.sizes[0],
           "optimizer_state_gib": optimizer_state_bytes(learner.engine.optimizer) / 2**30}
    if cuda:
        res["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
    del learner
    import gc

    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return res


def main(preset="demo,small", micro_batch_size="8,32", group="1", batch: int = 64, prompt_len: int = 48,
         response_len: int = 96, bf16: bool = False, zero_stage: int = 0,
         gradient_checkpointing: bool = False, repeats: int = 3, warmup: int = 1,
         peak_tflops: float = 0.0, max_load: float = 1.5, wait_s: float = 1800, lora_rank: int = 0,
         out: str = "benchmarks/results/learner.json") -> None:
    """Tokens/s, peak memory and MFU per (preset, micro-batch size). ``peak_tflops`` 0 = measure."""
    import torch

    from understand_r1_zero.learner import init_distributed

    cuda = torch.cuda.is_available()
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    init_distributed(cpu=not cuda)
    dtype = torch.bfloat16 if bf16 else torch.float32
    presets = preset.split(",") if isinstance(preset, str) else list(preset)
    mbs = _ints(micro_batch_size)
    groups = _ints(group)
    wait_for_quiet(max_load, wait_s)
    peak_measured = matmul_peak_tflops(dtype, device, size=8192 if cuda else 2048)
    peak = peak_tflops or peak_measured
    print(f"device {device}, {torch.get_num_threads()} threads; dense {str(dtype)[6:]} matmul peak "
          f"{peak_measured:.3f} TFLOP/s measured" + (f", {peak_tflops} given" if peak_tflops else ""))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in presets:
            spec = PRESETS[name]
            model_dir, n = save_random_model(spec, os.path.join(tmp, name))
            for mb, g in [(mb, g) for mb in mbs for g in groups]:
                if batch % mb:
                    print(f"skip micro_batch_size {mb}: does not divide batch {batch}")
                    continue
                wait_for_quiet(max_load, wait_s)
                r = bench_one(model_dir, n, spec, mb=mb, group=g, batch=batch, prompt_len=prompt_len,
                              response_len=response_len, bf16=bf16, zero_stage=zero_stage,
                              gradient_checkpointing=gradient_checkpointing, repeats=repeats,
                              warmup=warmup, peak_tflops=peak, device=device, lora_rank=lora_rank)
                r.update(preset=name, params=n, **spec)
                rows.append(r)
                mem = r.get("max_memory_allocated_gib", r["peak_rss_gib"])
                print(f"{name:>18} {n / 1e6:8.2f}M r={lora_rank:<3} mb={mb:<4} G={g:<3} {r['seconds_per_update']:7.3f} s/update "
                      f"{r['response_tokens_per_s']:9.0f} resp tok/s {r['all_tokens_per_s']:9.0f} tok/s "
                      f"{r['forwarded_tokens_per_s']:9.0f} fwd tok/s "
                      f"MFU {100 * r['mfu']:5.1f}%  mem {mem:6.2f} GiB  optimizer state "
                      f"{r['optimizer_state_gib']:.3f} GiB  load {r['load1_start']:.1f}",
                      flush=True)
    payload = {"benchmark": "learner", "machine": machine(),
               "setup": {"batch": batch, "prompt_len": prompt_len, "response_len": response_len, "bf16": bf16,
                         "zero_stage": zero_stage, "gradient_checkpointing": gradient_checkpointing,
                         "lora_rank": lora_rank,
                         "repeats": repeats, "warmup": warmup, "peak_tflops_used": peak,
                         "peak_tflops_measured": peak_measured, "flops_per_token": "8N" if gradient_checkpointing else "6N",
                         "memory": "torch.cuda.max_memory_allocated" if cuda else "peak RSS during the timed calls"},
               "results": rows}
    write_json(out, payload)


if __name__ == "__main__":
    import fire

    fire.Fire(main)
