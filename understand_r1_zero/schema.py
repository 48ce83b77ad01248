"""The one definition of the files training and evaluation write, and analysis reads.

* ``{save_path}/metrics.jsonl`` -- one JSON object per training step (``METRICS_*``).
* ``{save_path}/rollouts/step_XXXXX.jsonl`` -- one row per sampled response (``ROLLOUT_FIELDS``).
* ``{output}/samples.jsonl`` -- ``evaluate_model.py``, one row per problem (``SAMPLE_ROW_FIELDS``),
  each holding its n samples (``SAMPLE_FIELDS``); ``{output}/summary.json`` -- per-task metrics.

Readers go through ``read_jsonl`` / ``read_metrics`` / ``read_rollouts`` / ``read_samples``, which
check the fields, so a writer that drifts breaks loudly instead of producing a wrong plot.
Imports nothing heavy.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re

# ---------------------------------------------------------------- metrics.jsonl
METRICS_REQUIRED = (
    "step",
    "actor/reward_mean", "actor/formatted_frac", "actor/truncated_frac",
    "actor/response_len", "actor/response_len_correct", "actor/response_len_incorrect",
    "train/loss", "train/grad_norm", "train/entropy", "train/clip_frac", "train/lr",
    "time/generate_s", "time/grade_s", "time/train_s", "time/sync_s", "time/step_s",
)
METRICS_OPTIONAL = ("train/kl", "actor/accuracy", "actor/response_len_truncated", "train/tokens",
                    "train/seq_tokens", "mem/peak_gib", "eval/average/accuracy",
                    # the sampler-learner mismatch audit (every step) and, with --tis_cap, its correction
                    "mismatch/logprob_abs_diff", "mismatch/kl_k3", "mismatch/ratio_outside_frac", "mismatch/ratio_mean",
                    "mismatch/ratio_max", "mismatch/tis_weight_mean", "mismatch/tis_cut_frac",
                    # DAPO's dynamic sampling: groups dropped (all ranks), extra rounds drawn
                    "actor/dynamic_dropped", "actor/dynamic_filled", "actor/dynamic_rounds",
                    # An algorithm's tracker (losses.Algorithm.tracker) logs what it returns from update(),
                    # named <algo>/...; --algo mvar: its quantiles (used by this step, of this batch, after the update)
                    "mvar/q_alpha_used", "mvar/q_alpha_batch", "mvar/q_alpha_tracked",
                    "mvar/q_beta_used", "mvar/q_beta_batch", "mvar/q_beta_tracked", "mvar/score_mean")
EVAL_KEY = re.compile(r"^eval/(?P<bench>[^/]+)/(?P<metric>accuracy|response_len|formatted_frac)$")

# --------------------------------------------------------------- rollouts/*.jsonl
ROLLOUT_FIELDS = (
    "step", "prompt_index", "sample_index", "prompt", "response", "reference", "answer",
    "reward", "formatted", "length", "finish_reason", "truncated",
)
ROLLOUT_FILE = "step_{step:05d}.jsonl"

# --------------------------------------------------------------- samples.jsonl
SAMPLE_ROW_FIELDS = (
    "task", "index", "problem", "reference", "prompt", "template", "model", "samples",
)
SAMPLE_FIELDS = ("response", "answer", "reward", "formatted", "length", "finish_reason")
SUMMARY_TASK_FIELDS = (
    "n_problems", "n_samples", "accuracy", "ci95", "pass@k", "maj@n", "response_len_mean",
    "response_len_max", "formatted_rate", "truncated_rate",
)


class SchemaError(ValueError):
    pass


def check_row(row: dict, fields, what: str) -> dict:
    missing = [f for f in fields if f not in row]
    if missing:
        raise SchemaError(f"{what} row is missing fields {missing}; it has {sorted(row)}")
    return row


def _clean(v):
    # JSON has no NaN/inf: write them as null so every reader (pandas, jq, JS) agrees.
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def dumps(row: dict) -> str:
    return json.dumps({k: _clean(v) for k, v in row.items()}, ensure_ascii=False)


def append_jsonl(path: str, rows) -> None:
    """Append rows and flush+fsync, so an interrupted run keeps every completed line."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for r in rows:
            f.write(dumps(r) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str, fields=(), what: str = "jsonl") -> list[dict]:
    """Read a JSONL file; a torn last line (crash mid-write) is dropped, any other bad line raises."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist; point to a run/eval output directory")
    rows = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # torn final line from an interrupted write
                break
            raise SchemaError(f"{path}:{i + 1} is not valid JSON")
        rows.append(check_row(row, fields, f"{what} ({path}:{i + 1})"))
    return rows


def read_metrics(run_dir: str) -> list[dict]:
    """All rows of a run's metrics.jsonl. The step-0 row holds only the evaluation before any
    update (``step`` and ``eval/*``); every later row has all of ``METRICS_REQUIRED``."""
    path = os.path.join(run_dir, "metrics.jsonl")
    rows = read_jsonl(path, ("step",), "metrics")
    for r in rows:
        if r["step"] > 0:
            check_row(r, METRICS_REQUIRED, f"metrics step {r['step']} ({path})")
    return rows


def rollout_path(run_dir: str, step: int) -> str:
    return os.path.join(run_dir, "rollouts", ROLLOUT_FILE.format(step=step))


def checkpoint_dirs(run_dir: str, containing: str | None = None) -> list[str]:
    """``{run_dir}/checkpoints/step_XXXXX`` dirs, oldest first; never the ``.tmp`` of one being
    written. ``containing``: only those holding that entry (``"deepspeed"``: resumable; ``"model"``)."""
    root = os.path.join(run_dir, "checkpoints")
    names = sorted(d for d in os.listdir(root) if d.startswith("step_") and not d.endswith(".tmp")) \
        if os.path.isdir(root) else []
    dirs = [os.path.join(root, d) for d in names]
    return [d for d in dirs if os.path.isdir(os.path.join(d, containing))] if containing else dirs


def rollout_files(run_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(run_dir, "rollouts", "step_*.jsonl")))


def rollout_step(path: str) -> int:
    return int(re.search(r"step_(\d+)\.jsonl$", path).group(1))


def read_rollouts(run_dir: str) -> list[dict]:
    files = rollout_files(run_dir)
    if not files:
        raise FileNotFoundError(f"no rollouts in {run_dir}/rollouts; was the run saved there?")
    rows = []
    for p in files:
        rows.extend(read_jsonl(p, ROLLOUT_FIELDS, "rollout"))
    return rows


def read_samples(path: str) -> list[dict]:
    """``path`` is a samples.jsonl file or the evaluation output directory holding it."""
    if os.path.isdir(path):
        path = os.path.join(path, "samples.jsonl")
    rows = read_jsonl(path, SAMPLE_ROW_FIELDS, "samples")
    for r in rows:
        for s in r["samples"]:
            check_row(s, SAMPLE_FIELDS, f"sample of {r['task']}#{r['index']}")
    return rows
