"""Step breakdown of the miniature R1-Zero run: where one RL step's time goes, per actor.

    python benchmarks/bench_step.py                          # the CPU demo, hf and vllm, 10 steps
    python benchmarks/bench_step.py --actors vllm --steps 20 --rollout_batch_size 32

Runs ``train_zero_math.py`` (a subprocess, evaluation off: ``--eval_data ""``) for ``--steps``
steps per actor, reads ``metrics.jsonl`` through ``schema.read_metrics``, drops the first
``--skip`` steps (warm-up: vLLM compiles its sampler, allocators grow) and reports the share of
``time/step_s`` spent in generate, grade, train, sync and other (= step - the four). Other is the
loop's own bookkeeping: tensors for the stats, the all-reduce, the rollout log. Extra flags are
passed to ``train_zero_math.py`` unchanged.

Target: sync + other <= 10% of the step. Prints a table and writes ``--out``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO, Poller, load1, machine, median, wait_for_quiet, write_json  # noqa: E402

PHASES = ("generate", "grade", "train", "sync", "other")


class LoadSampler(Poller):
    """The 1-minute load average every few seconds while a measurement runs."""

    def __init__(self, every_s: float = 5.0):
        self.samples, self.every_s = [], every_s

    def poll(self):
        self.samples.append(load1())

    def summary(self) -> dict:
        s = self.samples or [load1()]
        return {"load1_min": min(s), "load1_mean": sum(s) / len(s), "load1_max": max(s)}


def run_train(actor: str, steps: int, save_path: str, flags: dict) -> tuple[list[dict], float]:
    """One ``train_zero_math.py`` run; returns its metrics rows and its wall time."""
    from understand_r1_zero import schema

    cmd = [sys.executable, os.path.join(REPO, "train_zero_math.py"), f"--actor={actor}",
           f"--max_steps={steps}", "--eval_data=", f"--save_path={save_path}", "--progress=False"]
    cmd += [f"--{k}={v}" for k, v in flags.items()]
    print("$", " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise SystemExit(f"train_zero_math.py --actor {actor} failed (exit {proc.returncode})")
    return [r for r in schema.read_metrics(save_path) if "time/step_s" in r], wall


def breakdown(rows: list[dict], responses_per_step: int) -> dict:
    """Per-phase seconds (median over steps) and shares of the summed step time."""
    tot = {p: 0.0 for p in PHASES}
    step_total = 0.0
    gen_tok = train_tok = 0.0
    for r in rows:
        parts = {p: r[f"time/{p}_s"] for p in PHASES if p != "other"}
        parts["other"] = r["time/step_s"] - sum(parts.values())
        for p in PHASES:
            tot[p] += parts[p]
        step_total += r["time/step_s"]
        gen_tok += r["actor/response_len"] * responses_per_step
        train_tok += r["train/tokens"]
    out = {
        "steps_measured": len(rows),
        "step_s_median": median([r["time/step_s"] for r in rows]),
        "step_s_mean": step_total / len(rows),
        "seconds_median": {p: median([(r["time/step_s"] - sum(r[f"time/{q}_s"] for q in PHASES[:4]))
                                      if p == "other" else r[f"time/{p}_s"] for r in rows])
                           for p in PHASES},
        "share": {p: tot[p] / step_total for p in PHASES},
        "generated_tokens_per_step": gen_tok / len(rows),
        "generated_tokens_per_s": gen_tok / tot["generate"],
        "trained_tokens_per_s": train_tok / tot["train"],
        "end_to_end_tokens_per_s": gen_tok / step_total,
    }
    out["per_step"] = [{"step": r["step"], "step_s": r["time/step_s"],
                        **{p: r[f"time/{p}_s"] for p in PHASES[:4]}} for r in rows]
    out["sync_plus_other_share"] = out["share"]["sync"] + out["share"]["other"]
    out["target_sync_plus_other_le_10pct"] = out["sync_plus_other_share"] <= 0.10
    return out


def main(actors="hf,vllm", steps: int = 10, skip: int = 2, max_load: float = 1.5,
         wait_s: float = 1800, out: str = "benchmarks/results/step.json", **flags) -> None:
    """Step breakdown for each actor; ``flags`` go to train_zero_math.py (e.g. --rollout_batch_size 32)."""
    from understand_r1_zero.config import from_flags

    if steps <= skip:
        raise SystemExit(f"--steps {steps} must exceed --skip {skip}")
    names = actors.split(",") if isinstance(actors, str) else list(actors)
    cfg = from_flags(**flags)  # the defaults the run will use, for the derived sizes
    n_resp = cfg.rollout_batch_size * cfg.num_samples
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for actor in names:
            load_before = wait_for_quiet(max_load, wait_s)
            with LoadSampler() as ls:
                rows, wall = run_train(actor, steps, os.path.join(tmp, actor), flags)
            rows = [r for r in rows if r["step"] > skip]
            res = breakdown(rows, n_resp)
            res.update(process_wall_s=wall, load1_before=load_before, **ls.summary())
            results[actor] = res

    print(f"\nstep breakdown: {cfg.rollout_batch_size} prompts x {cfg.num_samples} samples, "
          f"max {cfg.generate_max_length} tokens, steps {skip + 1}..{steps}")
    print(f"{'actor':>6} {'step s':>7} " + " ".join(f"{p:>9}" for p in PHASES)
          + f" {'sync+oth':>8} {'gen tok/s':>9} {'trn tok/s':>9} {'load':>10}")
    for a, r in results.items():
        print(f"{a:>6} {r['step_s_median']:>7.3f} "
              + " ".join(f"{100 * r['share'][p]:>8.1f}%" for p in PHASES)
              + f" {100 * r['sync_plus_other_share']:>7.1f}% {r['generated_tokens_per_s']:>9.0f}"
              f" {r['trained_tokens_per_s']:>9.0f} {r['load1_min']:.1f}-{r['load1_max']:.1f}")
    for a, r in results.items():
        ok = "holds" if r["target_sync_plus_other_le_10pct"] else "MISSED"
        print(f"target sync + other <= 10% ({a}): {100 * r['sync_plus_other_share']:.1f}% -> {ok}")
    payload = {"benchmark": "step", "machine": machine(),
               "setup": {"steps": steps, "skip": skip, "timing": "train_zero_math.py time/*_s from metrics.jsonl",
                         "config": cfg.to_dict(), "extra_flags": flags},
               "results": results}
    write_json(out, payload)


if __name__ == "__main__":
    import fire

    fire.Fire(main)
