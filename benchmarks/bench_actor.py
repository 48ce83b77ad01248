"""Generation throughput of the actor backends: generated tokens/s by batch size.

    python benchmarks/bench_actor.py                       # tiny model, hf and vllm, CPU
    python benchmarks/bench_actor.py --model_path Qwen/Qwen2.5-Math-1.5B --max_tokens 512

Each backend is built once and warmed up (vLLM compiles its sampler on the first call), then
every batch size is timed ``repeats`` times and the best run is kept. Tokens are the response
tokens actually generated (a sample that emits EOS early contributes fewer). Prints a table and
writes JSON to ``--out``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
# Runnable from a checkout without `pip install -e .`: the package sits one level up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROMPT = "Question: What is 12 + 34? Step:"


def _ints(x) -> list[int]:
    return [int(v) for v in (x.split(",") if isinstance(x, str) else
                             (x if isinstance(x, (list, tuple)) else [x]))]


def bench_backend(backend: str, model_path: str, batch_sizes: list[int], max_tokens: int,
                  repeats: int, **opts) -> list[dict]:
    from understand_r1_zero.actor import make_actor

    t0 = time.perf_counter()
    actor = make_actor(backend, model_path, seed=0, **opts)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    actor.generate([PROMPT], max_tokens=8)  # warm-up: vLLM's first call compiles the sampler
    warmup_s = time.perf_counter() - t0
    rows = []
    try:
        for bs in batch_sizes:
            best = None
            for r in range(repeats):
                t0 = time.perf_counter()
                groups = actor.generate([PROMPT] * bs, temperature=1.0, max_tokens=max_tokens,
                                        seed=r)
                dt = time.perf_counter() - t0
                tokens = sum(len(s.response_ids) for g in groups for s in g)
                if best is None or tokens / dt > best["tokens_per_s"]:
                    best = dict(backend=backend, batch_size=bs, tokens=tokens, seconds=dt,
                                tokens_per_s=tokens / dt)
            best.update(build_s=build_s, first_call_s=warmup_s)
            rows.append(best)
            print(f"{backend:>5} bs={bs:<4} {best['tokens']:>6} tok {best['seconds']:7.3f} s "
                  f"{best['tokens_per_s']:9.1f} tok/s", flush=True)
    finally:
        actor.close()
    return rows


def main(model_path: str | None = None, backends: str = "hf,vllm",
         batch_sizes="1,4,16,64,256", max_tokens: int = 64, repeats: int = 2,
         num_threads: int | None = 1, out: str = "benchmarks/results/actor.json") -> None:
    """Benchmark each backend on ``model_path`` (default: a freshly built tiny model).
    ``num_threads``: the actor's torch threads while generating on CPU (None: torch's own)."""
    import torch

    tmp = None
    if model_path is None:
        from understand_r1_zero.tiny import build_tiny_model

        tmp = tempfile.TemporaryDirectory()
        model_path = build_tiny_model(os.path.join(tmp.name, "tiny"), seed=0)
    sizes = _ints(batch_sizes)
    names = backends.split(",") if isinstance(backends, str) else list(backends)
    rows = []
    for b in names:
        rows += bench_backend(b, model_path, sizes, max_tokens, repeats, num_threads=num_threads)

    print(f"\n{'backend':>8} {'batch':>6} {'tokens':>7} {'seconds':>8} {'tok/s':>9}")
    for r in rows:
        print(f"{r['backend']:>8} {r['batch_size']:>6} {r['tokens']:>7} {r['seconds']:>8.3f} "
              f"{r['tokens_per_s']:>9.1f}")
    for b in names:
        r = next(x for x in rows if x["backend"] == b)
        print(f"{b}: engine build {r['build_s']:.1f} s, "
              f"first generate call {r['first_call_s']:.1f} s")
    meta = dict(model_path=model_path if tmp is None else "tiny (build_tiny_model, seed 0)",
                max_tokens=max_tokens, repeats=repeats, num_threads=num_threads,
                torch_threads=torch.get_num_threads(),
                cpu_count=os.cpu_count(), machine=platform.machine(),
                cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"meta": meta, "results": rows}, f, indent=2)
    print(f"wrote {out}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    import fire

    fire.Fire(main)
