r"""Template effects: one model, several prompt templates, the same problems (Dr. GRPO,
arXiv 2503.20783, Sec. 3.1 / Table 1: the template decides whether a base model answers at all,
and how well).

Per template x task (``template_table``):

* ``accuracy`` -- avg@n, the mean over problems of the mean reward of their samples
  (``evaluation.summarize_task``'s number; reward is 1 for a correct answer, else 0);
* ``formatted_rate`` -- share of responses the grader could read an answer from under the
  template's own rule (``formatted`` in samples.jsonl: the last closed ``\boxed{}`` for boxed
  templates; for r1 the last ``<answer>..</answer>`` after ``</think>``);
* ``answering_rate`` -- share of responses that give a final answer in *any* recognised form:
  formatted, or a closed non-empty ``\boxed{}`` anywhere (the boxed rule, ``extract_answer(..,
  "qwen_math")``), or a complete non-empty ``<answer>..</answer>`` anywhere (no ``</think>``
  needed). It is >= ``formatted_rate``; the gap is answers given in the "wrong" format;
* ``response_len_mean`` (tokens), ``truncated_rate`` (finish_reason "length"), counts.

The ``average`` task row is the unweighted mean over tasks of every rate (the paper's "Avg.").

``4shot`` is ``templates.few_shot`` on the four worked examples in ``FEW_SHOT_EXAMPLES`` (written
here, not taken from any benchmark) over the ``no`` template; ``Kshot`` / ``Kshot_<base>`` use
the first K (<= 4) over another base.

    python analysis/template_effects.py run --model Qwen/Qwen2.5-Math-1.5B --backend vllm \
        --eval_data data/evaluation_suite --tasks math,aime --limit 100 --max_tokens 3000
    python analysis/template_effects.py run --model ~/.cache/understand_r1_zero/synthetic_base_X \
        --eval_data synthetic --limit 100 --max_tokens 96
    python analysis/template_effects.py table out/qwen_math out/r1   # existing evaluate_model.py outputs
"""

from __future__ import annotations

import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from understand_r1_zero import schema  # noqa: E402
from understand_r1_zero.math_grader import extract_answer  # noqa: E402
from understand_r1_zero.templates import Template, few_shot, get_template  # noqa: E402

FEW_SHOT_EXAMPLES = [
    ("What is the value of $3 \\cdot 4 + 5$?",
     "Multiplication comes first: $3 \\cdot 4 = 12$. Then $12 + 5 = 17$. The answer is $\\boxed{17}$."),
    ("Solve for $x$: $2x - 7 = 9$.",
     "Adding 7 to both sides gives $2x = 16$, so $x = 8$. The answer is $\\boxed{8}$."),
    ("A rectangle has length 6 and width 4. What is its area?",
     "The area of a rectangle is length times width: $6 \\times 4 = 24$. The answer is $\\boxed{24}$."),
    ("What is $\\frac{1}{2} + \\frac{1}{3}$?",
     "Over the common denominator 6: $\\frac{3}{6} + \\frac{2}{6} = \\frac{5}{6}$. "
     "The answer is $\\boxed{\\frac{5}{6}}$."),
]
DEFAULT_TEMPLATES = ("qwen_math", "r1", "no", "4shot")
_SHOT = re.compile(r"^(\d+)shot(?:_(\w+))?$")
_ANSWER_TAG = re.compile(r"<\s*answer\s*>(.*?)<\s*/\s*answer\s*>", re.S | re.I)
TABLE_COLUMNS = ["template", "task", "n_problems", "n_responses", "accuracy", "answering_rate",
                 "formatted_rate", "response_len_mean", "truncated_rate"]


def resolve_template(name: str) -> Template:
    """A registered template, or ``Kshot[_base]`` built with ``templates.few_shot``."""
    m = _SHOT.match(str(name))
    if m is None:
        return get_template(name)
    k = int(m.group(1))
    if not 1 <= k <= len(FEW_SHOT_EXAMPLES):
        raise ValueError(f"{name!r}: only 1..{len(FEW_SHOT_EXAMPLES)} shots are written in FEW_SHOT_EXAMPLES")
    return few_shot(FEW_SHOT_EXAMPLES[:k], base=m.group(2) or "no")


def answered(sample: dict) -> bool:
    """The lenient "gave a final answer" of the module docstring."""
    if sample["formatted"]:
        return True
    text = sample["response"] or ""
    if extract_answer(text, "qwen_math") is not None:
        return True
    return any(m.group(1).strip() for m in _ANSWER_TAG.finditer(text))


def _names(x) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [s.strip() for s in x.split(",") if s.strip()]
    return [str(s) for s in x]


# ----------------------------------------------------------------------------- the table
def template_table(rows_by_template: dict[str, list[dict]]) -> pd.DataFrame:
    """``TABLE_COLUMNS``, one row per template x task plus an ``average`` row per template, from
    samples.jsonl rows (``schema.SAMPLE_ROW_FIELDS``) keyed by template label."""
    recs = []
    for label, rows in rows_by_template.items():
        per_task = []
        for task in dict.fromkeys(r["task"] for r in rows):
            trs = [r for r in rows if r["task"] == task]
            samples = [s for r in trs for s in r["samples"]]
            per_task.append({
                "template": label, "task": task, "n_problems": len(trs), "n_responses": len(samples),
                "accuracy": float(np.mean([np.mean([s["reward"] for s in r["samples"]]) for r in trs])),
                "answering_rate": float(np.mean([answered(s) for s in samples])),
                "formatted_rate": float(np.mean([bool(s["formatted"]) for s in samples])),
                "response_len_mean": float(np.mean([s["length"] for s in samples])),
                "truncated_rate": float(np.mean([s["finish_reason"] == "length" for s in samples])),
            })
        if not per_task:
            continue
        avg = {k: float(np.mean([t[k] for t in per_task])) for k in TABLE_COLUMNS[4:]}
        recs += per_task + [{"template": label, "task": "average",
                             "n_problems": sum(t["n_problems"] for t in per_task),
                             "n_responses": sum(t["n_responses"] for t in per_task), **avg}]
    return pd.DataFrame(recs, columns=TABLE_COLUMNS)


def plot_table(df: pd.DataFrame, model: str = ""):
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    acc = df.pivot(index="task", columns="template", values="accuracy")
    tasks = [t for t in dict.fromkeys(df["task"]) if t != "average"] + ["average"]
    acc.reindex(index=tasks, columns=list(dict.fromkeys(df["template"]))).plot.bar(ax=a, rot=20)
    a.set(title="accuracy per template and task", ylabel="accuracy (avg@n)", ylim=(0, 1.1))
    avg = df[df["task"] == "average"].set_index("template")[["answering_rate", "formatted_rate"]]
    avg.plot.bar(ax=b, rot=20)
    b.set(title="answering vs formatted rate (mean over tasks)", ylabel="share of responses", ylim=(0, 1.15))
    for ax in (a, b):
        ax.grid(alpha=0.3, axis="y")
        for bars in ax.containers:  # value labels: a zero-height bar is otherwise invisible
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    per = df[df["task"] != "average"].drop_duplicates("task")
    n = ", ".join(f"{t} {int(k)}" for t, k in zip(per["task"], per["n_problems"]))
    k = int(round(per["n_responses"].sum() / max(per["n_problems"].sum(), 1)))
    fig.suptitle(f"{model or 'model'}: n = {n} problems ({k} response(s) each, per template)", fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the probe
def _load_tasks(tasks, eval_data, limit) -> dict[str, list[dict]]:
    if isinstance(tasks, dict):
        return {t: list(p)[:limit] if limit else list(p) for t, p in tasks.items()}
    if eval_data is None:
        raise ValueError("pass tasks as a {task: problems} dict, or eval_data (a path or 'synthetic') and task names")
    if str(eval_data) == "synthetic":
        from understand_r1_zero.data import load_eval

        return load_eval("synthetic", "", "problem", "answer", limit=limit or 0)
    from understand_r1_zero.evaluation import load_eval_tasks

    return load_eval_tasks(eval_data, _names(tasks) or None, limit=limit or None)


def template_effects(model: str, tasks=None, templates=DEFAULT_TEMPLATES, *, eval_data: str | None = None,
                     backend: str = "hf", max_tokens: int = 3000, limit: int | None = None,
                     n_samples: int = 1, temperature: float = 0.0, top_p: float = 1.0, seed: int = 0,
                     grade_workers: int | None = None, samples_dir: str | None = None, actor=None,
                     **actor_opts):
    """Evaluate ``model`` under each of ``templates`` on the same problems (``evaluation.evaluate``;
    greedy by default, the paper's setting). Returns (``template_table`` df, figure).

    ``tasks``: a {task: [{"problem", "answer"}]} dict (``load_eval_tasks``), or task names read
    from ``eval_data`` (a path ``load_eval_tasks`` reads, or "synthetic" for the demo task);
    ``limit``: first N problems per task. ``samples_dir``: keep each template's samples.jsonl
    under ``{samples_dir}/{template}`` (resumable). ``actor``: reuse an engine (not closed);
    otherwise ``make_actor(backend, model, seed=seed, **actor_opts)`` is built and closed here."""
    from understand_r1_zero.evaluation import evaluate

    problems = _load_tasks(tasks, eval_data, limit)
    resolved = (dict(templates) if isinstance(templates, dict)  # {label: Template}, e.g. a custom few-shot
                else {name: resolve_template(name) for name in _names(templates)})  # fail before loading a model
    if not resolved:
        raise ValueError("no templates given")
    own = actor is None
    if own:
        from understand_r1_zero.actor import make_actor

        actor = make_actor(backend, model, seed=seed, **actor_opts)
    try:
        rows_by = {}
        for name, tpl in resolved.items():
            rows_by[name], _ = evaluate(
                actor, problems, template=tpl, n_samples=n_samples, temperature=temperature, top_p=top_p,
                max_tokens=max_tokens, seed=seed, grade_workers=grade_workers, model_name=str(model),
                output_dir=os.path.join(samples_dir, name) if samples_dir else None)
    finally:
        if own:
            actor.close()
    df = template_table(rows_by)
    return df, plot_table(df, model=str(model))


# ----------------------------------------------------------------------------- CLI
def _write(df, fig, out: str) -> tuple[str, str]:
    prefix = os.path.join(out, "template_effects") if out.endswith(("/", os.sep)) or os.path.isdir(out) else out
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    df.to_csv(prefix + ".csv", index=False)
    fig.savefig(prefix + ".png", dpi=110)
    plt.close(fig)
    print(df.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"wrote {prefix}.csv and {prefix}.png")
    return prefix + ".csv", prefix + ".png"


def run(model: str, eval_data: str = "synthetic", tasks: str = "", templates=DEFAULT_TEMPLATES,
        backend: str = "hf", max_tokens: int = 3000, limit: int = 0, n_samples: int = 1,
        temperature: float = 0.0, seed: int = 0, samples_dir: str = "",
        out: str = "outputs/template_effects/"):
    """Evaluate MODEL under each template; writes CSV + PNG to ``--out`` (a dir/ or a prefix)."""
    df, fig = template_effects(model, tasks or None, templates, eval_data=eval_data, backend=backend,
                               max_tokens=int(max_tokens), limit=int(limit) or None, n_samples=int(n_samples),
                               temperature=float(temperature), seed=int(seed), samples_dir=samples_dir or None)
    return _write(df, fig, out)


def table(*samples, out: str = "outputs/template_effects/"):
    """The table from existing evaluate_model.py outputs: ``table DIR_OR_JSONL [label=DIR ...]``;
    unlabelled ones are labelled by the template stored in their rows."""
    rows_by = {}
    for spec in samples:
        label, _, path = spec.partition("=") if "=" in spec and not os.path.exists(spec) else ("", "", spec)
        rows = schema.read_samples(path)
        rows_by[label or (rows[0]["template"] if rows else path)] = rows
    df = template_table(rows_by)
    models = sorted({r["model"] for rows in rows_by.values() for r in rows[:1]})
    return _write(df, plot_table(df, model=", ".join(models)), out)


if __name__ == "__main__":
    import fire

    fire.Fire({"run": run, "table": table})
