"""Benchmark evaluation, shared by ``evaluate_model.py`` and training's periodic eval.

``evaluate`` = generate (all problems, batched across tasks, in chunks) -> grade
(``rewards.compute_rewards``: the ``--reward``, by default the math grader, with the template's
extraction rule) -> one ``samples.jsonl`` row per
problem (``schema.SAMPLE_ROW_FIELDS``) -> summary. Training calls the same function with the same
template, so a checkpoint scores the same in both.

Per-task metrics (``summarize_task``); a sample is *correct* when its reward is > 0 (the grader
gives 1 or 0: Dr. GRPO uses no format reward):

* ``accuracy`` -- avg@n: mean over problems of the mean reward of the n samples (the paper's number);
* ``ci95`` -- 95% percentile bootstrap of ``accuracy`` over problems (1000 resamples, seed 0);
* ``pass@k`` -- {k: value} for every k <= n, the unbiased estimator 1 - C(n-c, k) / C(n, k)
  (Chen et al. 2021, arXiv 2107.03374, Eq. 1) evaluated as a product, so large n cannot overflow;
* ``maj@n`` -- majority vote over extracted answers (see ``majority_vote``);
* response length mean/max in tokens, formatted rate, truncated rate (finish_reason "length").

``average.accuracy`` is the unweighted mean of the task accuracies, the "Avg." column of Dr. GRPO's tables.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time

import numpy as np

from . import schema
from .data import load_eval_tasks, normalize_reference  # noqa: F401 - their home is data.py
from .templates import TEMPLATES, Template, get_template

logger = logging.getLogger(__name__)

DEFAULT_TASKS = ("aime", "amc", "math", "minerva", "olympiad_bench")
BASE_TEMPLATES = ("qwen_math", "r1", "no")
# A resumed run must match the stored config on these, or its rows would silently mix two setups.
RUN_CONFIG_KEYS = ("model", "template", "reward", "n_samples", "temperature", "top_p", "max_tokens",
                   "seed", "backend", "max_model_len")
# Recorded in run_config.json and summary.json, but a resume may change them: "limit" (a larger
# slice extends the rows a smaller one wrote).
RUN_INFO_KEYS = ("backend", "max_model_len", "limit")


# ----------------------------------------------------------------------------- metrics
def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k samples drawn without replacement from n, c of them correct, is correct).

    1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k / i)   (Chen et al. 2021, Fig. 3)."""
    if not 0 < k <= n or not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 < k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def normalize_answer(answer) -> str | None:
    """String-level normalisation for voting: whitespace, ``$``, ``\\left``/``\\right``, spacing
    commands, ``\\dfrac``/``\\tfrac``, ``\\text{}``, degrees and percent signs go, case folds, and a
    plain number is written canonically (``0.50`` -> ``0.5``, ``1,000`` -> ``1000``). The first
    step of ``majority_vote``'s grouping (which then merges ``1/2`` and ``\\frac{1}{2}``)."""
    if answer is None:
        return None
    s = str(answer)
    for a, b in (("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\left", ""), ("\\right", ""),
                 ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\ ", ""), ("$", ""),
                 ("^{\\circ}", ""), ("^\\circ", ""), ("\\%", ""), ("%", "")):
        s = s.replace(a, b)
    s = re.sub(r"\\(?:text|textbf|mathrm)\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\s+", "", s).rstrip(".").lower()
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d*)?", s):  # thousands separators, not a tuple
        s = s.replace(",", "")
    try:
        x = float(s)
    except ValueError:
        return s or None
    if not np.isfinite(x):
        return s
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


MAX_VOTE_CLASSES = 256  # distinct answers compared pairwise when voting (beyond: string classes only)


def _same_answer(a: str, b: str) -> bool:
    """The grader's exact in-process check, both ways (exact rationals, string canon, choice
    letters, text; never sympy, so a vote costs microseconds per pair)."""
    from .math_grader import _verdict_fast

    return _verdict_fast(a, [b]) is True and _verdict_fast(b, [a]) is True


def majority_vote(answers: list, rewards: list[float]) -> float:
    """maj@n for one problem: group the samples by their extracted answer's equivalence class
    (samples with no answer do not vote), take the largest class -- a tie goes to the class seen
    first, so the result is deterministic -- and score it by the mean reward of its samples.

    Classes: first ``normalize_answer``'s string key, then string classes merge, in order of first
    appearance, into the first earlier class whose first answer the grader's exact check judges
    equal both ways (``_same_answer``): ``1/2``, ``\\frac{1}{2}`` and ``0.5`` vote as one, ``0.4999``
    does not. Forms only sympy could equate (``\\sqrt{8}`` vs ``2\\sqrt{2}``) still vote
    separately: the check is bounded, at most ``MAX_VOTE_CLASSES`` distinct answers. No votes -> 0."""
    by_key: dict[str, list] = {}  # insertion order = order of first appearance
    for a, r in zip(answers, rewards):
        key = normalize_answer(a)
        if key is not None:
            by_key.setdefault(key, [str(a), []])[1].append(float(r))
    if not by_key:
        return 0.0
    classes: list[list] = []  # [first answer, rewards]
    for first, rs in by_key.values():
        home = next((c for c in classes if len(by_key) <= MAX_VOTE_CLASSES and _same_answer(c[0], first)), None)
        if home is None:
            classes.append([first, list(rs)])
        else:
            home[1].extend(rs)
    winner = max((c[1] for c in classes), key=len)  # max() keeps the first of equal-size classes
    return float(np.mean(winner))


def bootstrap_ci(values, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> list[float]:
    """Percentile bootstrap interval of the mean of ``values`` (one value per problem)."""
    v = np.asarray(values, dtype=np.float64)  # [m]
    if v.size == 0:
        return [float("nan"), float("nan")]
    idx = np.random.default_rng(seed).integers(0, v.size, size=(n_boot, v.size))  # [n_boot, m]
    means = v[idx].mean(axis=1)  # [n_boot]
    lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def summarize_task(rows: list[dict]) -> dict:
    """The ``schema.SUMMARY_TASK_FIELDS`` (+ ``grade_timeouts``) of one task from its rows."""
    if not rows:
        raise ValueError("summarize_task needs at least one problem")
    n = len(rows[0]["samples"])
    rewards = np.array([[s["reward"] for s in r["samples"]] for r in rows], dtype=np.float64)  # [m, n]
    per_problem = rewards.mean(axis=1)  # [m]
    correct = (rewards > 0).sum(axis=1)  # [m]
    samples = [s for r in rows for s in r["samples"]]
    lengths = np.array([s["length"] for s in samples])  # [m * n]
    return {
        "n_problems": len(rows),
        "n_samples": n,
        "accuracy": float(per_problem.mean()),
        "ci95": bootstrap_ci(per_problem),
        "pass@k": {str(k): float(np.mean([pass_at_k(n, int(c), k) for c in correct]))
                   for k in range(1, n + 1)},
        "maj@n": float(np.mean([majority_vote([s["answer"] for s in r["samples"]],
                                              [s["reward"] for s in r["samples"]]) for r in rows])),
        "response_len_mean": float(lengths.mean()),
        "response_len_max": int(lengths.max()),
        "formatted_rate": float(np.mean([bool(s["formatted"]) for s in samples])),
        "truncated_rate": float(np.mean([s["finish_reason"] == "length" for s in samples])),
        "grade_timeouts": int(sum(bool(s.get("grade_timeout")) for s in samples)),
    }


def summarize(rows: list[dict], tasks: list[str], config: dict | None = None) -> dict:
    """{"average": {"accuracy": mean of task accuracies}, "tasks": {task: summarize_task},
    "config": run config}."""
    per = {t: summarize_task([r for r in rows if r["task"] == t]) for t in tasks}
    accs = [v["accuracy"] for v in per.values()]
    return {"average": {"accuracy": float(np.mean(accs)) if accs else float("nan")},
            "tasks": per, "config": dict(config or {})}


def summary_to_metrics(summary: dict, prefix: str = "eval") -> dict:
    """Flat ``eval/<bench>/{accuracy,response_len,formatted_frac}`` + ``eval/average/accuracy``
    (the names ``schema.EVAL_KEY`` and ``METRICS_OPTIONAL`` define), for training's metrics.jsonl."""
    out = {}
    for t, v in summary["tasks"].items():
        out[f"{prefix}/{t}/accuracy"] = v["accuracy"]
        out[f"{prefix}/{t}/response_len"] = v["response_len_mean"]
        out[f"{prefix}/{t}/formatted_frac"] = v["formatted_rate"]
    out[f"{prefix}/average/accuracy"] = summary["average"]["accuracy"]
    return out


def format_table(summary: dict) -> str:
    """The printed table: accuracies in percent, as in the paper's tables."""
    def pct(x):
        return "   nan" if x is None or not np.isfinite(x) else f"{100 * x:6.1f}"

    head = (f"{'task':<16}{'probs':>6}{'n':>4}{'acc%':>7}  {'95% CI':<15}{'pass@n':>7}{'maj@n':>7}"
            f"{'len':>7}{'max':>6}{'fmt%':>7}{'trunc%':>7}")
    lines = [head, "-" * len(head)]
    for t, v in summary["tasks"].items():
        lo, hi = v["ci95"]
        pn = v["pass@k"].get(str(v["n_samples"]))
        lines.append(f"{t:<16}{v['n_problems']:>6}{v['n_samples']:>4}{pct(v['accuracy']):>7}  "
                     f"[{pct(lo)},{pct(hi)}] {pct(pn):>7}{pct(v['maj@n']):>7}"
                     f"{v['response_len_mean']:>7.0f}{v['response_len_max']:>6}"
                     f"{pct(v['formatted_rate']):>7}{pct(v['truncated_rate']):>7}")
    lines.append("-" * len(head))
    lines.append(f"{'average':<16}{'':>10}{pct(summary['average']['accuracy']):>7}"
                 f"   (mean of {len(summary['tasks'])} task accuracies)")
    limit = summary.get("config", {}).get("limit")
    if limit:
        lines.append(f"(slice: first {limit} problems per task; not comparable with full-benchmark numbers)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- output dir
def check_run_config(output_dir: str, config: dict) -> None:
    """Write ``run_config.json`` or, if the directory already holds rows, require the same
    ``RUN_CONFIG_KEYS`` (the seed only matters when sampling). Call before loading a model."""
    cfg_path = os.path.join(output_dir, "run_config.json")
    samples = os.path.join(output_dir, "samples.jsonl")
    has_rows = os.path.exists(samples) and os.path.getsize(samples) > 0
    if has_rows and not os.path.exists(cfg_path):
        raise ValueError(f"--output {output_dir} has samples.jsonl but no run_config.json, so a "
                         f"resume cannot be checked; use a new --output")
    if has_rows:
        with open(cfg_path) as f:
            old = json.load(f)
        keys = [k for k in RUN_CONFIG_KEYS if k != "seed" or config.get("temperature", 0) > 0]
        # a key an older run_config.json lacks (or a caller that does not know it) is not a mismatch
        diff = [k for k in keys if k in old and k in config and old[k] != config[k]]
        if diff:
            d = ", ".join(f"{k} {old.get(k)!r} -> {config.get(k)!r}" for k in diff)
            raise ValueError(f"--output {output_dir} holds a run with a different config ({d}); "
                             f"resuming would mix the two: use a new --output or delete it")
        info = {k: config[k] for k in RUN_INFO_KEYS if k in config}
        if any(old.get(k) != v for k, v in info.items()):  # e.g. a slice extended: record how it runs now
            _write_json(cfg_path, {**old, **info})
        return
    os.makedirs(output_dir, exist_ok=True)
    _write_json(cfg_path, config)  # nothing generated yet: (re)start with this config


def _write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, allow_nan=False, default=str)
    os.replace(tmp, path)  # atomic: a crash leaves the old file or the new one


def _load_finished(samples_path: str) -> dict[tuple[str, int], dict]:
    """Rows already written, by (task, index). A torn last line (killed mid-write) is cut off
    first, so the appends that follow start on a fresh line."""
    if not os.path.exists(samples_path):
        return {}
    with open(samples_path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
    rows = schema.read_samples(samples_path)
    return {(r["task"], int(r["index"])): r for r in rows}


# ----------------------------------------------------------------------------- evaluate
_warned: set = set()


def _warn_once(msg: str) -> None:
    if msg not in _warned:  # training evaluates every few steps; say it once
        _warned.add(msg)
        logger.warning(msg)


def instruct_reason(model_name: str) -> str | None:
    """Why a model looks instruction-tuned, or None."""
    m = re.search(r"instruct|chat|-it\b", str(model_name).lower())  # "-it\b": gemma-2b-it, not -iter
    if m:
        return f"its name contains {m.group()!r}"
    # A tokenizer chat template is no evidence: Qwen2.5(-Math) *base* models ship one too, and
    # warning on every paper evaluation would teach people to ignore the warning.
    return None


def _grade(reward: str, responses, refs, template: Template, grade_workers, timeout_s):
    """(reward, info) per response. A list reference is any-of, in the math grader (``_refs``)."""
    from .rewards import compute_rewards

    # A reward only needs the extraction rule; a few-shot template has no registered name.
    name = template.name if template.name in TEMPLATES else \
        next(t.name for t in TEMPLATES.values() if t.extraction == template.extraction)
    kw = {} if timeout_s is None else {"timeout_s": timeout_s}
    # the math reward has no format bonus (the paper's pure correctness reward): reward > 0 is correct
    return [(float(r), info) for r, info in compute_rewards(reward, responses, refs, template=name,
                                                           num_workers=grade_workers, **kw)]


def evaluate(actor, tasks: dict[str, list[dict]], *, template: str | Template = "qwen_math",
             n_samples: int = 1, temperature: float = 0.0, top_p: float = 1.0,
             max_tokens: int = 3000, seed: int = 0, grade_workers: int | None = None,
             reward: str = "math", grade_timeout: float | None = None, model_name: str = "", output_dir: str | None = None,
             chunk_size: int = 0, rank: int = 0, world_size: int = 1, run_info: dict | None = None,
             progress: bool = False) -> tuple[list[dict], dict]:
    """Generate, grade and summarise ``tasks`` ({task: [{"problem", "answer"}]}, as from
    ``load_eval_tasks``). Returns (samples.jsonl rows in task/problem order, summary).

    With ``output_dir`` the run is resumable: rows are appended to ``samples.jsonl`` (fsynced)
    after every chunk of ``chunk_size`` problems (0: about 1024 responses, big enough to keep an
    engine busy), and a rerun skips finished problems. Chunk
    boundaries and seeds (``seed + chunk number``) are fixed by the problem order, so a greedy
    resume reproduces an uninterrupted run (up to an engine's batch-shape-dependent floating
    point, e.g. bf16 on GPU), and so does a sampled one for every chunk lost whole; a chunk cut
    in half is resampled as a smaller batch (the actor draws per-prompt seeds by position): an
    equally valid draw, not the same one.

    Sharded (``world_size`` > 1, every rank calls it with the same arguments, as training does):
    each chunk is split round-robin over the ranks, each rank generates and grades its share,
    and the rows are gathered (``all_gather_object``), so every rank returns the full rows and
    summary and no rank sits at a barrier past the collective timeout while another evaluates
    alone. Greedy results equal one process's (tests/test_evaluation.py); a sampled evaluation
    draws per-prompt seeds by position within each rank's call, so it is an equally valid draw
    but not the one-process draw. A sharded call writes no ``output_dir``.

    ``run_info``: how it was run (``RUN_INFO_KEYS``: backend, max_model_len, limit), recorded in
    the config of run_config.json and the summary. ``progress``: a bar over the chunks.
    """
    if world_size > 1 and output_dir:
        raise ValueError("a sharded evaluate() (world_size > 1) writes no output_dir; evaluate "
                         "with one process to get a resumable samples.jsonl")
    tpl = get_template(template) if isinstance(template, str) else template
    empty = [t for t, probs in tasks.items() if not probs]
    if not tasks or empty:
        raise ValueError(f"nothing to evaluate: no tasks, or empty tasks {empty}")
    config = {"model": model_name, "template": tpl.name, "reward": reward, "n_samples": int(n_samples),
              "temperature": float(temperature), "top_p": float(top_p),
              "max_tokens": int(max_tokens), "seed": int(seed),
              **{k: v for k, v in (run_info or {}).items() if k in RUN_INFO_KEYS}}
    reason = instruct_reason(model_name)
    if reason and tpl.name in BASE_TEMPLATES:
        _warn_once(f"{model_name or 'the model'} looks instruction-tuned ({reason}) but is evaluated "
                   f"with the base template {tpl.name!r}; scores may be far below its chat template's")
    if temperature == 0 and n_samples > 1:
        _warn_once(f"temperature 0 is greedy: all {n_samples} samples per problem will be identical")

    finished, samples_path = {}, None
    if output_dir:
        check_run_config(output_dir, config)
        samples_path = os.path.join(output_dir, "samples.jsonl")
        finished = _load_finished(samples_path)

    todo = [(t, i, p) for t, probs in tasks.items() for i, p in enumerate(probs)]  # fixed order
    for t, i, p in todo:
        row = finished.get((t, i))
        if row is not None and (row["problem"] != p["problem"] or len(row["samples"]) != n_samples):
            raise ValueError(f"{samples_path}: row {t}#{i} does not match this run's problem or "
                             f"n_samples; the output dir belongs to other data: use a new --output")
    if getattr(actor, "context_len", None):  # fail before generating, naming the problem
        left = [(t, i, p) for t, i, p in todo if (t, i) not in finished]
        actor.check_prompt_lengths([len(actor.encode(tpl.format(p["problem"]))) for _, _, p in left],
                                   names=[f"{t}#{i}" for t, i, _ in left])
    chunk_size = chunk_size if chunk_size > 0 else max(1, 1024 // n_samples)
    n_chunks = (len(todo) + chunk_size - 1) // chunk_size
    n_left = sum((t, i) not in finished for t, i, _ in todo)
    if finished:
        logger.info(f"resuming: {len(todo) - n_left}/{len(todo)} problems already in {samples_path}")

    from tqdm import tqdm

    bar = tqdm(total=n_left * n_samples, desc="eval", unit="resp", disable=not progress or rank != 0,
               dynamic_ncols=True)
    for c in range(n_chunks):
        chunk = [x for x in todo[c * chunk_size:(c + 1) * chunk_size] if (x[0], x[1]) not in finished]
        if not chunk:
            continue
        order = {(t, i): k for k, (t, i, _) in enumerate(chunk)}
        chunk = chunk[rank::world_size]  # this rank's share (all of it for one process)
        t0 = time.time()
        prompts = [tpl.format(p["problem"]) for _, _, p in chunk]
        outs = actor.generate(prompts, n=n_samples, temperature=temperature, top_p=top_p,
                              max_tokens=max_tokens, stop=list(tpl.stop),
                              include_stop=tpl.include_stop, seed=seed + c)  # [P][n] Sample
        t1 = time.time()
        texts = [s.text for group in outs for s in group]
        refs = [p["answer"] for _, _, p in chunk for _ in range(n_samples)]
        graded = _grade(reward, texts, refs, tpl, grade_workers, grade_timeout)
        rows = []
        for j, ((t, i, p), prompt, group) in enumerate(zip(chunk, prompts, outs)):
            samples = []
            for k, s in enumerate(group):
                score, info = graded[j * n_samples + k]
                samples.append({"response": s.text, "answer": info.get("answer"), "reward": score,
                                "formatted": bool(info.get("formatted")),
                                "length": len(s.response_ids), "finish_reason": s.finish_reason,
                                "grade_timeout": bool(info.get("timeout", False))})
            rows.append({"task": t, "index": i, "problem": p["problem"], "reference": p["answer"],
                         "prompt": prompt, "template": tpl.name, "model": model_name,
                         "samples": samples})
        if world_size > 1:
            import torch.distributed as dist

            every = [None] * world_size
            dist.all_gather_object(every, rows)
            rows = sorted((r for rs in every for r in rs), key=lambda r: order[(r["task"], r["index"])])
        if samples_path:
            schema.append_jsonl(samples_path, rows)
        finished.update({(r["task"], r["index"]): r for r in rows})
        logger.info(f"eval chunk {c + 1}/{n_chunks}: {len(chunk)} problems x {n_samples}, "
                    f"generate {t1 - t0:.1f}s, grade {time.time() - t1:.1f}s")
        bar.update(len(rows) * n_samples)
    bar.close()

    rows = [finished[(t, i)] for t, i, _ in todo]
    summary = summarize(rows, list(tasks), config)
    if output_dir:
        _write_json(os.path.join(output_dir, "summary.json"), summary)
    return rows, summary
