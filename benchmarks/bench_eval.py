"""Evaluation wall time: the demo's tiny model on the five-benchmark suite, greedy, per backend.

    python benchmarks/bench_eval.py                                  # full suite (1,560 problems), hf and vllm
    python benchmarks/bench_eval.py --limit 40 --backends vllm       # a slice per task, extrapolated

Runs ``evaluate_model.py`` (a subprocess: the command a user runs) on the demo's base model
(``synthetic.build_base_model()``) with ``--max_tokens`` (default 96, the demo's eval length) and
``--temperature 0``, and reports the process wall time (start-up included), the generate and
grade seconds that ``evaluation.evaluate`` logs per chunk, and generated tokens/s. With
``--limit N`` only the first N problems of each task run; the full-suite time is then
extrapolated (start-up + per-problem generate/grade time x the suite's problem count) and marked
``extrapolated`` in the JSON. Long prompts make a problem's cost uneven across tasks, so a slice
taken from every task extrapolates better than one task.

``--max_model_len`` defaults to 4096 for both backends. The demo model was built with 2048
positions, but OlympiadBench holds a 3,077-token prompt in its byte-level tokenizer, and
``evaluate_model.py`` refuses (one line, before generating) a prompt that does not fit. RoPE
runs past the trained positions, so both backends are given the same 4096 (vLLM with
``VLLM_ALLOW_LONG_MAX_MODEL_LEN=1``) and do the same work. ``--max_model_len 0`` uses the
model's own 2048 and shows the refusal.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO, load1, machine, wait_for_quiet, write_json  # noqa: E402

SUITE = "/work/shared/data/evaluation_suite"
CHUNK = re.compile(r"eval chunk (\d+)/(\d+): (\d+) problems x (\d+), generate ([\d.]+)s, grade ([\d.]+)s")


def suite_size(eval_data: str, tasks: str) -> dict:
    from understand_r1_zero.evaluation import load_eval_tasks

    return {t: len(p) for t, p in load_eval_tasks(eval_data, tasks).items()}


def run_backend(backend: str, model: str, eval_data: str, tasks: str, limit: int, max_tokens: int,
                max_model_len: int, out_dir: str) -> dict:
    cmd = [sys.executable, os.path.join(REPO, "evaluate_model.py"), f"--model={model}",
           f"--backend={backend}", f"--eval_data={eval_data}", f"--tasks={tasks}", "--temperature=0",
           f"--max_tokens={max_tokens}", f"--max_model_len={max_model_len}", f"--limit={limit}",
           f"--output={out_dir}", "--template=qwen_math"]
    print("$", " ".join(cmd), flush=True)
    t0 = time.time()
    env = {**os.environ, "VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}  # see the module doc
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    wall = time.time() - t0
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.stderr.write(log[-6000:])
        return {"error": f"evaluate_model.py exited {proc.returncode}", "log_tail": log[-3000:], "wall_s": wall}
    chunks = [tuple(float(x) for x in m.groups()) for m in CHUNK.finditer(log)]
    gen = sum(c[4] for c in chunks)
    grade = sum(c[5] for c in chunks)
    rows = [json.loads(line) for line in open(os.path.join(out_dir, "samples.jsonl"))]
    tokens = sum(s["length"] for r in rows for s in r["samples"])
    summary = json.load(open(os.path.join(out_dir, "summary.json")))
    return {"wall_s": wall, "generate_s": gen, "grade_s": grade, "startup_and_rest_s": wall - gen - grade,
            "problems": len(rows), "chunks": len(chunks), "generated_tokens": tokens,
            "generated_tokens_per_s": tokens / gen if gen else None,
            "truncated_frac": sum(s["finish_reason"] == "length" for r in rows for s in r["samples"]) / len(rows),
            "average_accuracy": summary["average"]["accuracy"]}


def main(backends="hf,vllm", limit: int = 0, max_tokens: int = 96, max_model_len: int = 4096,
         eval_data: str = SUITE, tasks: str = "aime,amc,math,minerva,olympiad_bench",
         max_load: float = 1.5, wait_s: float = 1800, out: str = "benchmarks/results/eval.json") -> None:
    """Wall time of evaluate_model.py on the demo model, per backend; ``limit`` > 0 extrapolates."""
    from understand_r1_zero.synthetic import build_base_model

    names = backends.split(",") if isinstance(backends, str) else list(backends)
    tasks = ",".join(tasks) if isinstance(tasks, (list, tuple)) else tasks
    sizes = suite_size(eval_data, tasks)
    full = sum(sizes.values())
    model = build_base_model()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for b in names:
            lb = wait_for_quiet(max_load, wait_s)
            r = run_backend(b, model, eval_data, tasks, limit, max_tokens, max_model_len, os.path.join(tmp, b))
            r.update(load1_before=lb, load1_after=load1())
            if "error" not in r:
                per = (r["generate_s"] + r["grade_s"]) / r["problems"]
                r["extrapolated"] = r["problems"] < full
                r["full_suite_s"] = r["startup_and_rest_s"] + per * full if r["extrapolated"] else r["wall_s"]
            results[b] = r
    print(f"\neval wall time, demo model, {full} problems, greedy, max_tokens {max_tokens}"
          + (f" (slice: first {limit} per task, extrapolated)" if limit else ""))
    print(f"{'backend':>8} {'problems':>8} {'wall s':>8} {'gen s':>8} {'grade s':>8} {'other s':>8} "
          f"{'gen tok/s':>9} {'full suite s':>12} {'load':>9}")
    for b, r in results.items():
        if "error" in r:
            print(f"{b:>8} FAILED: {r['error']}")
            continue
        print(f"{b:>8} {r['problems']:>8} {r['wall_s']:>8.1f} {r['generate_s']:>8.1f} {r['grade_s']:>8.1f} "
              f"{r['startup_and_rest_s']:>8.1f} {r['generated_tokens_per_s']:>9.0f} "
              f"{r['full_suite_s']:>11.1f}{'*' if r['extrapolated'] else ' '} "
              f"{r['load1_before']:.1f}-{r['load1_after']:.1f}")
    prev = json.load(open(out)) if os.path.exists(out) else {}
    if prev.get("setup", {}).get("max_model_len") == max_model_len:  # keep other backends' rows
        results = {**{b: r for b, r in prev["results"].items() if b not in results}, **results}
    payload = {"benchmark": "eval", "machine": machine(),
               "setup": {"model": "synthetic.build_base_model()", "eval_data": eval_data, "tasks": sizes,
                         "limit": limit, "max_tokens": max_tokens, "max_model_len": max_model_len,
                         "temperature": 0, "timing": "evaluate_model.py subprocess wall time; "
                         "generate/grade from evaluation.evaluate's per-chunk log"},
               "results": results}
    write_json(out, payload)


if __name__ == "__main__":
    import fire

    fire.Fire(main)
