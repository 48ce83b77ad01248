r"""The miniature's findings in one command: length bias, template effects, self-reflection.

    python analysis/reproduce.py                 # the full study: 17 min from an empty cache on 2 Xeon cores (46 on EPYC)
    python analysis/reproduce.py --short True    # the shortened version the tests run (1 seed, few steps)

It builds the miniature base model (``synthetic.MINIATURE``: the demo's addition task with a
planted template bias and a visible slip, cached like the demo's), writes the task's splits to
``{runs_dir}/data``, trains with ``train_zero_math.py`` (one subprocess per run, every run's
resolved config saved beside it) and writes to ``{out}``:

* ``length_bias/`` -- GRPO, Dr. GRPO and GFPO over ``seeds`` (Dr. GRPO paper, Fig. 5):
  per-outcome length curves with bands across seeds (``length_by_outcome.png``), the end gap in
  incorrect-response length, GRPO minus Dr. GRPO, paired by prompt within each seed and then
  across seeds with a 95% interval, and the held-out accuracy of each;
* ``templates/`` -- the base model's greedy accuracy under each template (no, qwen_math, r1,
  4-shot), and RL (Dr. GRPO) from the template it prefers (``no``) and the mismatched ones
  (``qwen_math``: the length study's first Dr. GRPO run; ``r1``), accuracy over steps (Fig. 6);
* ``question_sets/`` -- RL with the qwen_math template on an easy (2-digit) and a hard (3-digit)
  question set, each evaluated on both (Fig. 6: the question set matters);
* ``self_reflection/`` -- re-check lines per response over training, split by correctness, for
  the first seed (``analysis/keyword_count.py``; the paper's self-reflection keyword analysis);
* ``verdict.json`` -- every number above, the criteria, and each run's config and seed.

Every run is seeded; on the same machine a rerun reproduces the committed results exactly
(``--skip_existing True`` reuses a finished run trained with the same flags; the numbers are
recomputed from the runs' files).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from analysis import keyword_count, length_bias, template_effects  # noqa: E402
from understand_r1_zero import schema, synthetic  # noqa: E402
from understand_r1_zero.templates import few_shot  # noqa: E402

LENGTH_ALGOS = ("grpo", "drgrpo", "gfpo")
ALGO_LABELS = {"grpo": "GRPO", "drgrpo": "Dr. GRPO", "gfpo": "GFPO"}
# The full study's sizes; --short shrinks them (the test's smoke run).
FULL = dict(seeds=(0, 1, 2), length_steps=40, template_steps=30, eval_every=10, eval_limit=200, base_steps=None)
SHORT = dict(seeds=(0,), length_steps=3, template_steps=2, eval_every=2, eval_limit=16, base_steps=20)
"""The smoke run: one seed, a few steps, and a miniature continued for only ``base_steps`` steps
(its own cache entry), so the test exercises every stage in a few minutes."""
COMMON_FLAGS = {"num_samples": 8, "rollout_batch_size": 8, "actor": "vllm", "generate_max_length": 128,
                "eval_max_length": 128, "progress": False, "save_final_only_model": True}
LENGTH_FLAGS = {"prompt_template": "qwen_math", "learning_rate": 5e-5}
"""The length-bias runs: the template whose greedy path is the hasty slip. RL leaves it within
~10 steps; the careful path's own errors (misread digits) then keep the training reward near 60%."""
TEMPLATE_FLAGS = {"algo": "drgrpo", "learning_rate": 5e-5}


# ----------------------------------------------------------------------------- data
def write_data(data_dir: str, eval_limit: int) -> dict[str, str]:
    """The miniature's question sets on disk: mixed (2-3 digits, the demo's), easy (2 digits),
    hard (3 digits) train files, and one eval DatasetDict with a split per set."""
    from datasets import Dataset, DatasetDict

    os.makedirs(data_dir, exist_ok=True)
    sets = {"mixed": (2, 3), "easy": (2, 2), "hard": (3, 3)}
    paths, evals = {}, {}
    for name, (lo, hi) in sets.items():
        train, ev = synthetic.make_task(4000, eval_limit, seed=0, min_digits=lo, max_digits=hi)
        paths[name] = os.path.join(data_dir, f"{name}_train.jsonl")
        with open(paths[name], "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in train)
        evals[name] = Dataset.from_list(ev)
    paths["eval"] = os.path.join(data_dir, "eval")
    shutil.rmtree(paths["eval"], ignore_errors=True)
    DatasetDict(evals).save_to_disk(paths["eval"])
    return paths


def few_shot_examples(k: int = 4) -> list[tuple[str, str]]:
    """k careful worked solutions from the train pool: the miniature's k-shot prompt."""
    import random

    rng, out = random.Random("miniature-few-shot"), []
    while len(out) < k:
        a, b = rng.randint(10, 999), rng.randint(10, 999)
        if not synthetic.is_held_out(a, b):
            out.append((synthetic.make_problem(a, b)["problem"], synthetic.solution(a, b)))
    return out


# ----------------------------------------------------------------------------- training
def _same_config(save: str, flags: dict) -> bool:
    """Whether the finished run in ``save`` was trained with ``flags`` (its resolved config.json)."""
    try:
        with open(os.path.join(save, "config.json")) as f:
            saved = json.load(f)
    except (FileNotFoundError, ValueError):
        return False

    def same(a, b):
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return str(a).lower() == str(b).lower()

    return all(k in saved and same(saved[k], v) for k, v in flags.items())


def train(save: str, flags: dict, skip_existing: bool) -> dict:
    """One ``train_zero_math.py`` run into ``save`` (wiped first); returns its resolved config."""
    steps = int(flags["max_steps"])
    if skip_existing and length_bias._finished(save, steps) and _same_config(save, flags):
        print(f"[reproduce] reusing {save}", flush=True)
    else:
        shutil.rmtree(save, ignore_errors=True)
        os.makedirs(os.path.dirname(save), exist_ok=True)
        cmd = [sys.executable, os.path.join(ROOT, "train_zero_math.py"), "--save_path", save,
               *[x for k, v in flags.items() for x in (f"--{k}", str(v))]]
        print(f"[reproduce] {shlex.join(cmd)}", flush=True)
        t0 = time.time()
        with open(save + ".log", "w") as log:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
        if rc != 0:
            with open(save + ".log") as f:
                tail = f.read()[-3000:]
            raise RuntimeError(f"training into {save} failed (exit {rc}); last lines of {save}.log:\n{tail}")
        print(f"[reproduce]   done in {time.time() - t0:.0f} s", flush=True)
    with open(os.path.join(save, "config.json")) as f:
        return json.load(f)


def eval_curve(run_dir: str) -> pd.DataFrame:
    """Held-out greedy accuracy per task over steps (step 0 = the base model)."""
    recs = []
    for r in schema.read_metrics(run_dir):
        for k, v in r.items():
            if k.startswith("eval/") and k.endswith("/accuracy") and k != "eval/average/accuracy":
                recs.append({"step": r["step"], "task": k.split("/")[1], "accuracy": float(v)})
    return pd.DataFrame(recs, columns=["step", "task", "accuracy"])


def end_accuracy(curve: pd.DataFrame, task: str) -> float:
    """One task's held-out accuracy at its last evaluated step (of an ``eval_curve``)."""
    c = curve[curve["task"] == task]
    return float(c.loc[c["step"].idxmax(), "accuracy"])


def start_end(curve: pd.DataFrame, task: str) -> dict:
    """One task's held-out accuracy at step 0 (the base model) and at its last evaluated step."""
    c = curve[curve["task"] == task]
    return {"start": float(c[c["step"] == 0]["accuracy"].iloc[0]), "end": end_accuracy(c, task),
            "end_step": int(c["step"].max())}


def final_accuracy(run_dir: str, task: str) -> float:
    return end_accuracy(eval_curve(run_dir), task)


# ----------------------------------------------------------------------------- length bias
def _t95(k: int) -> float:
    """Two-sided 95% Student-t quantile for k - 1 degrees of freedom (k seeds)."""
    from scipy import stats

    return float(stats.t.ppf(0.975, k - 1)) if k > 1 else float("nan")


def lengths_per_seed(runs: dict[int, dict[str, str]]) -> dict[int, pd.DataFrame]:
    """``length_bias.length_by_outcome`` of each seed's runs, read once for the verdict and the bands."""
    out = {}
    for s, by_algo in runs.items():
        out[s], _ = length_bias.length_by_outcome(by_algo)
        plt.close("all")
    return out


def length_bias_across_seeds(runs: dict[int, dict[str, str]], eval_task: str = "mixed",
                             frac: float = 1 / 3, lengths: dict[int, pd.DataFrame] | None = None) -> dict:
    """The acceptance numbers: for each seed, GRPO minus Dr. GRPO incorrect-response length on
    the same prompts in the last ``frac`` of steps (``length_bias.paired_by_prompt``), then the
    mean over seeds with two standard errors -- across seeds (sd / sqrt(k): the seed-to-seed
    spread) and pooled from the within-seed paired SEs -- and the larger one decides. Also the
    unpaired last-window means and the final held-out accuracy of every algorithm."""
    seeds = sorted(runs)
    lengths = lengths if lengths is not None else lengths_per_seed(runs)
    per_seed = []
    for s in seeds:
        p = length_bias.paired_by_prompt(runs[s]["grpo"], runs[s]["drgrpo"], frac)
        if p is None:
            raise RuntimeError(f"seed {s}: no (step, prompt) has incorrect responses in both GRPO's and Dr. GRPO's "
                               f"runs, or their prompts differ: nothing to pair")
        if not (np.isfinite(p["last_mean_diff"]) and np.isfinite(p["last_se"])):
            raise RuntimeError(f"seed {s}: fewer than 2 prompts with incorrect responses in both runs' last "
                               f"window ({p['last_pairs']}): the task is too easy to measure a length bias")
        summ = length_bias.window_summary(lengths[s], frac).set_index(["run", "outcome"])
        rec = {"seed": s, "paired_last_gap": p["last_mean_diff"], "paired_last_se": p["last_se"],
               "paired_last_pairs": p["last_pairs"], "paired_first_gap": p["first_mean_diff"],
               "paired_first_se": p["first_se"]}
        for a in runs[s]:
            acc = start_end(eval_curve(runs[s][a]), eval_task)
            for o in ("correct", "incorrect"):
                rec[f"{a}_{o}_last_mean"] = float(summ.loc[(a, o), "last_mean"])
                rec[f"{a}_{o}_first_mean"] = float(summ.loc[(a, o), "first_mean"])
            rec[f"{a}_incorrect_last_n"] = float(summ.loc[(a, "incorrect"), "last_n"])
            rec[f"{a}_final_accuracy"], rec[f"{a}_base_accuracy"] = acc["end"], acc["start"]
        per_seed.append(rec)
    t = pd.DataFrame(per_seed)
    k = len(seeds)
    gap = float(t["paired_last_gap"].mean())
    se_seeds = float(t["paired_last_gap"].std(ddof=1) / k ** 0.5) if k > 1 else float("nan")
    se_pooled = float(np.sqrt((t["paired_last_se"] ** 2).sum()) / k)
    se = max(se_seeds, se_pooled) if k > 1 else se_pooled
    acc = {a: {"mean": float(t[f"{a}_final_accuracy"].mean()),
               "per_seed": t[f"{a}_final_accuracy"].tolist(),
               "base": float(t[f"{a}_base_accuracy"].mean())} for a in runs[seeds[0]]}
    acc_gap = acc["drgrpo"]["mean"] - acc["grpo"]["mean"]
    out = {
        "criterion": ("GRPO's incorrect responses longer than Dr. GRPO's in the last third of steps, "
                      "paired by prompt within each seed, by more than 3 standard errors across seeds "
                      "(the larger of the seed-to-seed SE and the pooled within-seed paired SE); and "
                      "Dr. GRPO's final held-out accuracy within 5 points of GRPO's, or better"),
        "seeds": seeds,
        "incorrect_gap_tokens": gap,
        "se_across_seeds": se_seeds,
        "se_pooled_paired": se_pooled,
        "se_used": se,
        "z": gap / se if se > 0 else float("nan"),
        "ci95_across_seeds": ([gap - _t95(k) * se_seeds, gap + _t95(k) * se_seeds] if k > 1 else None),
        "first_window_gap_tokens": float(t["paired_first_gap"].mean()),
        "final_accuracy": acc,
        "drgrpo_minus_grpo_accuracy": acc_gap,
        "per_seed": per_seed,
    }
    out["length_bias_shows"] = bool(k > 1 and np.isfinite(se) and se > 0 and gap > 3 * se)
    out["accuracy_within_5_points"] = bool(acc_gap >= -0.05)
    out["passed"] = out["length_bias_shows"] and out["accuracy_within_5_points"]
    out["summary"] = (
        f"GRPO minus Dr. GRPO incorrect-response length, last third of steps, paired by prompt: "
        f"{gap:+.1f} tokens over {k} seed(s) (SE across seeds {se_seeds:.2f}, pooled paired SE {se_pooled:.2f}, "
        f"z = {out['z']:.1f}; first third {out['first_window_gap_tokens']:+.1f}); final held-out accuracy "
        + ", ".join(f"{ALGO_LABELS.get(a, a)} {v['mean']:.3f}" for a, v in acc.items())
        + f" (base {acc['grpo']['base']:.3f})")
    return out


def seed_bands(runs: dict[int, dict[str, str]], lengths: dict[int, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Per algorithm x step x outcome: the mean over seeds of the per-seed mean length, its SE
    across seeds, and the share of responses in that outcome."""
    lengths = lengths if lengths is not None else lengths_per_seed(runs)
    parts = []
    for s in runs:
        df = lengths[s]
        tot = df.groupby(["run", "step"])["n"].transform("sum")
        parts.append(df.assign(seed=s, share=df["n"] / tot))
    d = pd.concat(parts, ignore_index=True)
    # an outcome absent at a (seed, step) has share 0 there, not a missing value
    full = pd.MultiIndex.from_product([d["seed"].unique(), d["run"].unique(), d["step"].unique(),
                                       list(length_bias.OUTCOMES)], names=["seed", "run", "step", "outcome"])
    share = d.set_index(["seed", "run", "step", "outcome"])["share"].reindex(full, fill_value=0.0)
    g = d.groupby(["run", "step", "outcome"])
    out = pd.DataFrame({"seeds": g.size(), "mean_length": g["mean_length"].mean(),
                        "se_length": g["mean_length"].std(ddof=1) / np.sqrt(g.size()),
                        "responses": g["n"].sum()})
    out = out.join(share.groupby(["run", "step", "outcome"]).mean(), how="outer").reset_index()
    out["seeds"] = out["seeds"].fillna(0).astype(int)
    out["responses"] = out["responses"].fillna(0)
    order = {a: i for i, a in enumerate(runs[next(iter(runs))])}  # the caller's algorithm order
    out = out.sort_values(["run", "step", "outcome"], key=lambda c: c.map(order) if c.name == "run" else c)
    return out.rename(columns={"run": "algo"}).reset_index(drop=True)


def _smooth(s: pd.Series, w: int) -> pd.Series:
    return s.rolling(max(1, w), min_periods=1, center=True).mean()


def plot_length_bias(bands: pd.DataFrame, result: dict, smooth: int = 5):
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    for ax, o in zip(axes, ("correct", "incorrect", "truncated")):
        for i, a in enumerate(dict.fromkeys(bands["algo"])):
            b = bands[(bands["algo"] == a) & (bands["outcome"] == o)].set_index("step").sort_index()
            if b.empty:
                continue
            m, se = _smooth(b["mean_length"], smooth), _smooth(b["se_length"].fillna(0), smooth)
            ax.plot(m.index, m, color=f"C{i}", label=ALGO_LABELS.get(a, a))
            ax.fill_between(m.index, m - se, m + se, color=f"C{i}", alpha=0.2)
        ax.set(title=f"{o} responses", xlabel="RL step", ylabel="output length (tokens)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, f"no {o} responses", transform=ax.transAxes, ha="center", color="grey")
    ax = axes[3]
    for i, a in enumerate(dict.fromkeys(bands["algo"])):
        b = bands[(bands["algo"] == a) & (bands["outcome"] == "correct")].set_index("step").sort_index()
        ax.plot(b.index, _smooth(b["share"], smooth), color=f"C{i}", label=ALGO_LABELS.get(a, a))
    ax.set(title="training reward", xlabel="RL step", ylabel="share of samples correct", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    k = len(result["seeds"])
    fig.suptitle(f"Length bias on the miniature ({k} seed(s); mean over seeds, band = 1 SE across seeds, "
                 f"{smooth}-step centred mean) -- cf. Dr. GRPO paper Fig. 5\n"
                 + textwrap.fill(result["summary"], 180), fontsize=9)
    fig.tight_layout()
    fig.subplots_adjust(top=0.78)  # room for the three-line title, no more
    return fig


# ----------------------------------------------------------------------------- templates
def plot_templates(base: pd.DataFrame, curves: dict[str, pd.DataFrame], task: str):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    avg = base[base["task"] == task]
    ax = axes[0]
    ax.bar(avg["template"], avg["accuracy"], color=[f"C{i}" for i in range(len(avg))])
    for x, (acc, fmt) in enumerate(zip(avg["accuracy"], avg["formatted_rate"])):
        ax.text(x, acc + 0.01, f"{acc:.2f}\n(formatted {fmt:.2f})", ha="center", fontsize=8)
    ax.set(title="base model, greedy (cf. the paper's no-template vs Qwen-Math comparison)", xlabel="prompt template",
           ylabel="held-out accuracy", ylim=(0, 1.1))
    ax = axes[1]
    for i, (tpl, c) in enumerate(curves.items()):
        c = c[c["task"] == task].sort_values("step")
        ax.plot(c["step"], c["accuracy"], marker="o", color=f"C{i}", label=f"RL with template {tpl}")
    ax.set(title="RL (Dr. GRPO) from each template (cf. paper Fig. 6)", xlabel="RL step",
           ylabel="held-out accuracy (greedy)", ylim=(0, 1.05))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_question_sets(curves: dict[str, pd.DataFrame], template: str):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, task in zip(axes, ("easy", "hard")):
        for i, (qset, c) in enumerate(curves.items()):
            c = c[c["task"] == task].sort_values("step")
            ax.plot(c["step"], c["accuracy"], marker="o", color=f"C{i}", label=f"trained on {qset} questions")
        ax.set(title=f"evaluated on {task} questions ({template} template)", xlabel="RL step",
               ylabel="held-out accuracy (greedy)", ylim=(0, 1.05))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Question set x template (cf. paper Fig. 6 right: easy GSM-8K/ASDiv vs MATH questions)", fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- self-reflection
def self_reflection(runs: dict[str, str]) -> tuple[pd.DataFrame, object]:
    """Re-check lines ("Check:") per response over training, by correctness, one line per algorithm."""
    parts = []
    for a, d in runs.items():
        df, _ = keyword_count.keyword_counts(d)
        plt.close("all")
        parts.append(df[["step", "outcome", "n", "check:", "reflective_frac"]].assign(algo=a))
    df = pd.concat(parts, ignore_index=True).rename(columns={"check:": "checks_per_response"})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, o in zip(axes, ("correct", "incorrect")):
        for i, a in enumerate(runs):
            s = df[(df["algo"] == a) & (df["outcome"] == o)].set_index("step").sort_index()
            ax.plot(s.index, _smooth(s["checks_per_response"], 5), color=f"C{i}", label=ALGO_LABELS.get(a, a))
        ax.set(title=f"{o} responses", xlabel="RL step", ylabel="re-check lines per response")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Self-reflection on the miniature: 'Check:' lines per response, 5-step centred mean "
                 "(cf. the paper's self-reflection keyword counts)", fontsize=10)
    fig.tight_layout()
    return df, fig


# ----------------------------------------------------------------------------- the command
def _json_safe(x):
    """Plain JSON: NaN and infinities become null, numpy scalars and tuples plain values."""
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def main(out: str = "analysis/results", runs_dir: str = "runs/reproduce", short: bool = False,
         skip_existing: bool = False, seeds: str = "") -> dict:
    """Run the whole study (``--short True``: the smoke version) and write ``{out}``."""
    t_start = time.time()
    size = dict(SHORT if short else FULL)
    if seeds:
        size["seeds"] = tuple(int(s) for s in str(seeds).split(","))
    os.makedirs(out, exist_ok=True)
    base = synthetic.build_base_model(**dict(synthetic.MINIATURE, **(
        {"steps": size["base_steps"]} if size["base_steps"] else {})))
    data = write_data(os.path.join(runs_dir, "data"), size["eval_limit"])
    common = dict(COMMON_FLAGS, pretrain=base, eval_data=data["eval"], eval_steps=size["eval_every"])
    verdict = {"command": shlex.join([os.path.basename(sys.argv[0]), *sys.argv[1:]]), "sizes": size,
               "base_model": {"path": base, "config": json.load(open(os.path.join(base, "synthetic_build.json")))},
               "runs": {}}

    # 1. templates on the base model
    tpls = {n: template_effects.resolve_template(n) for n in ("no", "qwen_math", "r1")}
    tpls["4shot"] = few_shot(few_shot_examples(), base="no")
    base_df, fig = template_effects.template_effects(base, ["mixed", "easy", "hard"], tpls, eval_data=data["eval"],
                                                     max_tokens=COMMON_FLAGS["eval_max_length"])
    plt.close(fig)
    tdir = os.path.join(out, "templates")
    os.makedirs(tdir, exist_ok=True)
    base_df.to_csv(os.path.join(tdir, "base_accuracy.csv"), index=False)
    base_acc = base_df[base_df["task"] == "mixed"].set_index("template")["accuracy"].to_dict()

    # 2. RL from the preferred template (no) and the one rarely closed in its own format (r1)
    curves = {}
    for tpl in ("no", "r1"):
        save = os.path.join(runs_dir, f"template_{tpl}")
        verdict["runs"][save] = train(save, dict(common, **TEMPLATE_FLAGS, prompt_template=tpl, seed=0,
                                                 prompt_data=data["mixed"], eval_tasks="mixed",
                                                 max_steps=size["template_steps"]), skip_existing)
        curves[tpl] = eval_curve(save)

    # 3. the question-set axis, with the mismatched template RL recovers (qwen_math)
    qdir = os.path.join(out, "question_sets")
    os.makedirs(qdir, exist_ok=True)
    qcurves = {}
    for qset in ("easy", "hard"):
        save = os.path.join(runs_dir, f"question_set_{qset}")
        verdict["runs"][save] = train(save, dict(common, **TEMPLATE_FLAGS, prompt_template="qwen_math", seed=0,
                                                 prompt_data=data[qset], eval_tasks="easy,hard",
                                                 max_steps=size["template_steps"]), skip_existing)
        qcurves[qset] = eval_curve(save)
    pd.concat([c.assign(trained_on=q) for q, c in qcurves.items()]).to_csv(
        os.path.join(qdir, "accuracy.csv"), index=False)
    fig = plot_question_sets(qcurves, "qwen_math")
    fig.savefig(os.path.join(qdir, "question_sets.png"), dpi=110)
    plt.close(fig)
    verdict["question_sets"] = {
        f"trained_on_{q}": {t: {k: v for k, v in start_end(c, t).items() if k != "end_step"}
                            for t in ("easy", "hard")} for q, c in qcurves.items()}

    # 4. length bias over seeds, and self-reflection on the same runs
    runs: dict[int, dict[str, str]] = {}
    for s in size["seeds"]:
        runs[s] = {}
        for algo in LENGTH_ALGOS:
            save = os.path.join(runs_dir, f"length_{algo}_seed{s}")
            verdict["runs"][save] = train(save, dict(common, **LENGTH_FLAGS, algo=algo, seed=s,
                                                     prompt_data=data["mixed"], eval_tasks="mixed",
                                                     max_steps=size["length_steps"]), skip_existing)
            runs[s][algo] = save
    ldir = os.path.join(out, "length_bias")
    os.makedirs(ldir, exist_ok=True)
    lengths = lengths_per_seed(runs)
    lb = length_bias_across_seeds(runs, lengths=lengths)
    bands = seed_bands(runs, lengths)
    bands.to_csv(os.path.join(ldir, "length_by_outcome.csv"), index=False)
    pd.DataFrame(lb["per_seed"]).to_csv(os.path.join(ldir, "per_seed.csv"), index=False)
    fig = plot_length_bias(bands, lb)
    fig.savefig(os.path.join(ldir, "length_by_outcome.png"), dpi=110)
    plt.close(fig)
    verdict["length_bias"] = lb

    sdir = os.path.join(out, "self_reflection")
    os.makedirs(sdir, exist_ok=True)
    sr, fig = self_reflection(runs[size["seeds"][0]])
    sr.to_csv(os.path.join(sdir, "checks_per_response.csv"), index=False)
    fig.savefig(os.path.join(sdir, "self_reflection.png"), dpi=110)
    plt.close(fig)

    # 5. the template verdict. RL from qwen_math is the length study's Dr. GRPO run of the first
    # seed (the same algorithm and learning rate as the template runs), read up to template_steps.
    qwen_run = runs[size["seeds"][0]]["drgrpo"]
    assert LENGTH_FLAGS["learning_rate"] == TEMPLATE_FLAGS["learning_rate"] and TEMPLATE_FLAGS["algo"] == "drgrpo"
    c = eval_curve(qwen_run)
    curves["qwen_math"] = c[c["step"] <= size["template_steps"]]
    curves = {t: curves[t] for t in ("no", "qwen_math", "r1")}
    pd.concat([c.assign(template=t) for t, c in curves.items()]).to_csv(os.path.join(tdir, "rl_accuracy.csv"),
                                                                      index=False)
    fig = plot_templates(base_df, curves, "mixed")
    fig.savefig(os.path.join(tdir, "templates.png"), dpi=110)
    plt.close(fig)

    rl = {t: start_end(c, "mixed") for t, c in curves.items()}
    gains = {t: v["end"] - v["start"] for t, v in rl.items()}
    verdict["templates"] = {
        "base_accuracy_greedy": base_acc,
        "planted": {"template_mix (template, share of pretraining batches, slip probability)":
                    synthetic.MINIATURE["template_mix"], "r1_tag_prob": synthetic.MINIATURE["r1_tag_prob"]},
        "planted_direction": "no (the pretraining majority, fewest slips) above qwen_math (more slips), "
                             "qwen_math >= r1 (rarely closed in its own format), no above 4-shot (never seen)",
        "planted_direction_holds": bool(base_acc["no"] > base_acc["qwen_math"] >= base_acc["r1"]
                                        and base_acc["no"] > base_acc["4shot"]),
        "rl": rl, "rl_runs": {"no": os.path.join(runs_dir, "template_no"), "qwen_math": qwen_run,
                              "r1": os.path.join(runs_dir, "template_r1")},
        "gain": gains,
        "mismatched_templates": ["qwen_math", "r1"],
        "mismatched_gain_at_least_20_points": {t: bool(gains[t] >= 0.20) for t in ("qwen_math", "r1")},
    }

    verdict["seconds"] = round(time.time() - t_start, 1)
    with open(os.path.join(out, "verdict.json"), "w") as f:
        json.dump(_json_safe(verdict), f, indent=2)
    print(f"[reproduce] length bias: {lb['summary']}", flush=True)
    print(f"[reproduce] templates: base {base_acc}; RL {rl}", flush=True)
    print(f"[reproduce] wrote {out}/ in {verdict['seconds'] / 60:.1f} min", flush=True)
    return verdict


if __name__ == "__main__":
    import logging

    import fire

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # the base-model builds say so

    fire.Fire(main, serialize=lambda _: None)  # the numbers are in verdict.json; print only the summary
