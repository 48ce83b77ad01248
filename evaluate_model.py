"""Evaluate a model on the math benchmarks: greedy, 3000 tokens, five benchmarks (Dr. GRPO,
arXiv 2503.20783, Sec. 4 and Table 4).

    python evaluate_model.py --model Qwen/Qwen2.5-Math-1.5B --template qwen_math \\
        --tasks aime,amc,math,minerva,olympiad_bench --n_samples 1 --temperature 0 \\
        --max_tokens 3000 --backend vllm --output outputs/eval/qwen2.5-math-1.5b

Writes ``{output}/samples.jsonl`` (one row per problem, ``schema.SAMPLE_ROW_FIELDS``),
``{output}/summary.json`` and ``{output}/run_config.json``, and prints the table. Rerunning with
the same ``--output`` resumes: finished problems are not generated again. The benchmark data comes
from ``scripts/build_eval_data.py``. All the work is ``understand_r1_zero.evaluation.evaluate``,
which training's periodic evaluation calls too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sys
from dataclasses import dataclass

from understand_r1_zero.flags import check_model_path, coerce_fields, help_text, parse, wants_help

REPO = os.path.dirname(os.path.abspath(__file__))


@dataclass
class EvalArgs:
    model: str = ""
    """Model to evaluate: a local HF directory or a hub name (e.g. Qwen/Qwen2.5-Math-1.5B). Required."""
    template: str = "qwen_math"
    """Prompt template (templates.py); use the one the model was trained with."""
    tasks: str = "aime,amc,math,minerva,olympiad_bench"
    """Comma-separated benchmarks: splits of --eval_data."""
    n_samples: int = 1
    """Samples per problem; accuracy is avg@n, and pass@k / maj@n are reported for k <= n."""
    temperature: float = 0.0
    """Sampling temperature; 0 = greedy (the paper's setting)."""
    top_p: float = 1.0
    """Nucleus sampling."""
    max_tokens: int = 3000
    """Max generated tokens per response (the paper: 3000)."""
    eval_data: str = os.path.join(REPO, "data", "evaluation_suite")
    """Benchmarks: a load_from_disk DatasetDict dir (one split per task), a Dataset dir, a .jsonl/.json/.parquet file, or a generated task (synthetic, countdown: its held-out split; --tasks is then ignored). Default: data/evaluation_suite in the repo, built by scripts/build_eval_data.py."""
    reward: str = "math"
    """Reward that scores the responses (rewards.REWARDS): math (the grader) or countdown; as in training."""
    input_key: str = "problem"
    """Column of --eval_data holding the question."""
    output_key: str = "answer"
    """Column of --eval_data holding the reference answer (a string, number or list of accepted answers)."""
    backend: str = "vllm"
    """Generation backend: vllm or hf (transformers generate, slow; for CPU checks)."""
    output: str = ""
    """Output dir for samples.jsonl / summary.json; rerunning resumes it. Empty = outputs/eval/<model>_<template>_t<T>_p<top_p>_n<n>_len<max_tokens>[_seed<s>]."""
    seed: int = 0
    """Sampling seed."""
    limit: int = 0
    """Evaluate only the first N problems of each task (0 = all), for quick slices."""
    grade_workers: int = 0
    """Grader processes (0 = the grader's default)."""
    dtype: str = "auto"
    """Actor dtype: auto = bfloat16 on GPU (as the paper's evaluation), float32 on CPU."""
    max_model_len: int = 0
    """Context (prompt + response positions) for both backends; responses stop at its end. 0 = the model's max_position_embeddings (Qwen2.5-Math: 4096)."""
    chunk_size: int = 0
    """Problems per generate call, flushed to samples.jsonl after each (0 = about 1024 responses per call)."""

    def __post_init__(self):
        coerce_fields(self)
        from understand_r1_zero.templates import get_template

        if not self.model:
            raise ValueError("--model is required: a local model directory or a hub name such as "
                             "Qwen/Qwen2.5-Math-1.5B")
        from understand_r1_zero.data import check_generated_reward
        from understand_r1_zero.rewards import get_reward

        get_template(self.template)  # raises listing the valid names
        get_reward(self.reward)
        check_generated_reward(self.eval_data, self.reward, "--eval_data")
        if self.backend not in ("vllm", "hf"):
            raise ValueError(f"--backend {self.backend!r} is not valid; choose vllm or hf")
        if not [t for t in self.tasks.split(",") if t.strip()]:
            raise ValueError("--tasks is empty; e.g. --tasks aime,amc,math,minerva,olympiad_bench")
        for name in ("n_samples", "max_tokens"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("temperature", "limit", "grade_workers", "chunk_size", "max_model_len"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"--top_p must be in (0, 1], got {self.top_p}")
        if not self.output:
            parts = self.model.rstrip("/").split("/")
            # a training checkpoint, RUN/checkpoints/step_XXXXX/model, is named RUN_step_XXXXX
            base = f"{parts[-4]}_{parts[-2]}" if len(parts) >= 4 and parts[-1] == "model" and \
                parts[-3] == "checkpoints" else parts[-1]
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", base)
            seed = f"_seed{self.seed}" if self.temperature > 0 else ""
            reward = "" if self.reward == "math" else f"_{self.reward}"
            self.output = os.path.join("outputs", "eval", f"{name}_{self.template}{reward}_t{self.temperature:g}"
                                       f"_p{self.top_p:g}_n{self.n_samples}_len{self.max_tokens}{seed}")


def parse_flags(**flags) -> EvalArgs:
    return parse(EvalArgs, flags)


def main(**flags):
    """Evaluate --model on the benchmarks; flags are listed below."""
    from understand_r1_zero.data import GENERATED, load_eval, load_eval_tasks
    from understand_r1_zero.rewards import check_references
    from understand_r1_zero.evaluation import check_run_config, evaluate, format_table

    if wants_help(flags):
        print(main.__doc__)
        return
    # Every user error (flags, data, output dir) is raised here, before a model loads.
    try:
        args = parse_flags(**flags)
        check_model_path(args.model, "--model")  # first: nothing is written for a model that cannot load
        if args.eval_data in GENERATED:
            tasks = load_eval(args.eval_data, "", args.input_key, args.output_key, limit=args.limit)
        else:
            tasks = load_eval_tasks(args.eval_data, args.tasks, limit=args.limit or None,
                                    input_key=args.input_key, output_key=args.output_key)
        for t, probs in tasks.items():
            check_references(args.reward, [p["answer"] for p in probs], f"--eval_data {t}")
        check_run_config(args.output, {"model": args.model, "template": args.template, "reward": args.reward,
                                       "n_samples": args.n_samples, "temperature": args.temperature,
                                       "top_p": args.top_p, "max_tokens": args.max_tokens,
                                       "seed": args.seed, **_run_info(args)})
    except (ValueError, FileNotFoundError) as e:
        _fail(e)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print("config:", json.dumps(dataclasses.asdict(args), indent=1))
    print("problems:", ", ".join(f"{t} {len(p)}" for t, p in tasks.items()),
          f"| {sum(map(len, tasks.values())) * args.n_samples} responses")

    from understand_r1_zero.actor import make_actor

    actor = make_actor(args.backend, args.model, seed=args.seed, dtype=args.dtype,
                       max_model_len=args.max_model_len or None)
    actor.progress = True  # hf: a bar over each chunk's generate batches
    try:
        _, summary = evaluate(actor, tasks, template=args.template, n_samples=args.n_samples,
                              temperature=args.temperature, top_p=args.top_p,
                              max_tokens=args.max_tokens, seed=args.seed,
                              grade_workers=args.grade_workers or None, reward=args.reward,
                              model_name=args.model,
                              output_dir=args.output, chunk_size=args.chunk_size,
                              run_info=_run_info(args), progress=True)
    except ValueError as e:  # e.g. a prompt longer than the context, found before generating
        _fail(e)
    finally:
        actor.close()
    print(format_table(summary))
    print(f"wrote {args.output}/samples.jsonl and summary.json")


def _run_info(args) -> dict:
    """How the evaluation ran, recorded beside its results (a 20-problem slice must say so)."""
    return {"backend": args.backend, "max_model_len": args.max_model_len, "limit": args.limit}


def _fail(e: Exception):
    """A user error: one line on stderr, exit status 2 (as train_zero_math.py)."""
    print(f"evaluate_model.py: error: {e}", file=sys.stderr)
    sys.exit(2)


main.__doc__ += "\n\nFlags:\n" + help_text(EvalArgs)

if __name__ == "__main__":
    import fire

    fire.Fire(main)
