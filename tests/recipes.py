"""Reading the paper recipes in examples/: their flags, and which of them a miniature may change."""

from __future__ import annotations

import glob
import os
import re
import shlex

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = sorted(r for r in glob.glob(os.path.join(ROOT, "examples", "*.sh"))
                 if not os.path.basename(r).startswith("_"))

# What the CPU miniature may change (issue 14): the model, the data and the sizes. Everything
# else is behaviour and runs exactly as the recipe sets it.
SIZE_FLAGS = {"pretrain", "prompt_data", "eval_data", "max_steps", "rollout_batch_size", "num_samples",
              "generate_max_length", "eval_max_length", "micro_batch_size", "train_batch_size",
              "grade_workers", "vllm_gpu_ratio", "save_path"}
NAME_FLAGS = {"wb_run_name"}  # a label, not behaviour


def recipe_flags(path: str) -> tuple[dict[str, str], list[str]]:
    """({flag: value}, the raw tokens) of the recipe's `launch` call."""
    text = open(path).read().split("launch \\", 1)[1]
    toks = shlex.split(text.replace("\\\n", " "))
    return {t[2:]: v for t, v in zip(toks[::2], toks[1::2]) if re.match(r"^--\w+$", t)}, toks


def behaviour(flags: dict[str, str]) -> tuple:
    """The recipe's behavioural flags, as a hashable key: recipes with equal keys may share a run."""
    return tuple(sorted((k, v) for k, v in flags.items() if k not in SIZE_FLAGS | NAME_FLAGS))


def groups() -> dict[tuple, list[str]]:
    out: dict[tuple, list[str]] = {}
    for r in RECIPES:
        out.setdefault(behaviour(recipe_flags(r)[0]), []).append(r)
    return out
