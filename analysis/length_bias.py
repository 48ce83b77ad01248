"""Length bias: do incorrect responses grow longer under GRPO than under Dr. GRPO?

Dr. GRPO (arXiv 2503.20783, Sec. 3.1, Fig. 5) shows that GRPO's per-response ``1/|o_i|``
normalisation penalises long *incorrect* responses less than short ones (a negative advantage is
divided by a larger length), so wrong answers drift longer during training; Dr. GRPO drops the
normaliser and their length stays flat. This probe plots response length over training steps per
outcome, one line per run:

* ``correct``   -- reward > 0 and not truncated;
* ``incorrect`` -- reward == 0 and not truncated;
* ``truncated`` -- hit the token limit (finish_reason "length"), whatever the grader said.

It reads the rollouts (``schema.read_rollouts``) and falls back to metrics.jsonl
(``actor/response_len_{correct,incorrect,truncated}``) for a run saved with
``--log_rollouts False``. Known gap of the fallback: training logs "incorrect" as every response
that is not correct, truncated ones included, and gives no counts (``n`` is NaN there).

    python analysis/length_bias.py plot runs/grpo runs/drgrpo --out outputs/length_bias/
    python analysis/length_bias.py compare --max_steps 40 --seed 42   # trains both, then plots
    python analysis/length_bias.py compare --extra_flags="--eval_limit 50 --learning_rate 1e-4"
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

from understand_r1_zero import schema  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_SCRIPT = os.path.join(ROOT, "train_zero_math.py")
OUTCOMES = ("correct", "incorrect", "truncated")
COLUMNS = ["run", "step", "outcome", "n", "mean_length", "std_length", "source"]


# ----------------------------------------------------------------------------- reading
def outcome(row: dict) -> str:
    """The outcome group of one rollout row. Truncation wins: under ``--truncated mask`` a
    truncated response can keep a positive reward, but it never finished its answer."""
    if row["truncated"]:
        return "truncated"
    return "correct" if row["reward"] > 0 else "incorrect"


def lengths_from_rollouts(run_dir: str) -> pd.DataFrame:
    """One row per (step, outcome): response count, mean and (population) std of token length."""
    rows = schema.read_rollouts(run_dir)
    df = pd.DataFrame({"step": [r["step"] for r in rows], "outcome": [outcome(r) for r in rows],
                       "length": [r["length"] for r in rows]})
    g = df.groupby(["step", "outcome"])["length"]
    out = pd.DataFrame({"n": g.size(), "mean_length": g.mean(), "std_length": g.std(ddof=0)}).reset_index()
    out["source"] = "rollouts"
    return out


def lengths_from_metrics(run_dir: str) -> pd.DataFrame:
    """The fallback: per-step means logged by training; ``n``/``std_length`` are NaN, and
    "incorrect" includes truncated responses (see the module docstring)."""
    keys = {o: f"actor/response_len_{o}" for o in OUTCOMES}
    recs = []
    for r in schema.read_metrics(run_dir):
        if r["step"] == 0:  # the eval-only row before any update
            continue
        for o, k in keys.items():
            v = r.get(k)
            if v is not None and np.isfinite(v):
                recs.append({"step": r["step"], "outcome": o, "n": np.nan, "mean_length": float(v),
                             "std_length": np.nan, "source": "metrics"})
    return pd.DataFrame(recs, columns=COLUMNS[1:])


def _labelled(run_dirs) -> dict[str, str]:
    """{label: dir} from a dict, a list of dirs / ``label=dir`` strings, or a comma string."""
    if isinstance(run_dirs, dict):
        return {str(k): str(v) for k, v in run_dirs.items()}
    if isinstance(run_dirs, str):
        run_dirs = [d for d in run_dirs.split(",") if d]
    out = {}
    for d in map(str, run_dirs):
        label, _, path = d.partition("=") if "=" in d and not os.path.exists(d) else ("", "", d)
        label = label or os.path.basename(os.path.normpath(path))
        if label in out:  # two runs named "run": fall back to the full path
            label = path
        out[label] = path
    if not out:
        raise ValueError("no run directories given")
    return out


def _pool(n, mean, std) -> tuple[float, float, float]:
    """(N, mean, population std) of the union of groups given by their n/mean/std arrays."""
    n, mean, std = (np.asarray(x, dtype=np.float64) for x in (n, mean, std))
    N = n.sum()
    if N <= 0:
        return 0.0, float("nan"), float("nan")
    m = float((n * mean).sum() / N)
    var = float((n * (std ** 2 + (mean - m) ** 2)).sum() / N)
    return float(N), m, var ** 0.5


# ----------------------------------------------------------------------------- the probe
def length_by_outcome(run_dirs, source: str = "auto", smooth: int = 1):
    """Response length over training steps per outcome, for one or more runs.

    ``run_dirs``: a list of training ``--save_path`` dirs (labelled by their basename, or
    ``"label=dir"``) or a {label: dir} dict. ``source``: "rollouts", "metrics" or "auto" (the
    rollouts if the run wrote them). ``smooth``: rolling-mean window (steps) for the plot only.

    Returns (df with ``COLUMNS``, one row per run x step x outcome; figure with one panel per
    outcome plus the training accuracy, one line per run).
    """
    if source not in ("auto", "rollouts", "metrics"):
        raise ValueError(f"source must be auto, rollouts or metrics, got {source!r}")
    parts = []
    for label, d in _labelled(run_dirs).items():
        use_rollouts = source == "rollouts" or (source == "auto" and os.path.isdir(os.path.join(d, "rollouts")))
        part = lengths_from_rollouts(d) if use_rollouts else lengths_from_metrics(d)
        part.insert(0, "run", label)
        parts.append(part)
    df = pd.concat(parts, ignore_index=True)[COLUMNS]
    order = {r: i for i, r in enumerate(dict.fromkeys(df["run"]))}  # keep the caller's run order
    df = df.sort_values(["run", "step", "outcome"], key=lambda c: c.map(order) if c.name == "run" else c,
                        ignore_index=True)
    return df, plot_lengths(df, smooth=smooth)


def plot_lengths(df: pd.DataFrame, smooth: int = 1):
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    runs = list(dict.fromkeys(df["run"]))
    colors = {r: f"C{i}" for i, r in enumerate(runs)}
    for ax, o in zip(axes, OUTCOMES):
        for r in runs:
            s = df[(df["run"] == r) & (df["outcome"] == o)].set_index("step")["mean_length"]
            if len(s):
                ax.plot(s.index, s.rolling(max(1, int(smooth)), min_periods=1).mean(), color=colors[r], label=r,
                        marker="." if len(s) < 3 else None)  # a lone truncated step stays visible
        ax.set(title=f"{o} responses", xlabel="step", ylabel="mean length (tokens)")
        if not (df["outcome"] == o).any():  # say so, rather than draw an empty axis
            ax.text(0.5, 0.5, f"no {o} responses\nin any run", transform=ax.transAxes, ha="center",
                    va="center", color="grey", fontsize=11)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set(xlabel="", ylabel="")
            continue
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[3]
    for r in runs:
        sub = df[df["run"] == r]
        if sub["n"].notna().all():
            tot = sub.groupby("step")["n"].sum()
            ok = sub[sub["outcome"] == "correct"].groupby("step")["n"].sum().reindex(tot.index, fill_value=0)
            ax.plot(tot.index, (ok / tot).rolling(max(1, int(smooth)), min_periods=1).mean(),
                    color=colors[r], label=r)
    ax.set(title="share correct (training samples)", xlabel="step", ylabel="share of responses correct",
           ylim=(0, 1))
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the verdict
def window_summary(df: pd.DataFrame, frac: float = 1 / 3) -> pd.DataFrame:
    """Per run x outcome (plus ``wrong`` = incorrect + truncated): the mean length over the first
    and the last ``frac`` of the run's steps, pooled over responses (plain mean of step means
    when counts are unknown), ``growth`` = last - first, and a naive standard error of the last
    window's mean (responses treated as independent, which they are not: read it as a scale)."""
    recs = []
    for run, sub in df.groupby("run", sort=False):
        steps = np.sort(sub["step"].unique())
        k = max(1, int(round(len(steps) * frac)))
        windows = {"first": steps[:k], "last": steps[-k:]}
        counted = bool(sub["n"].notna().all())  # False for the metrics fallback
        for o in (*OUTCOMES, "wrong"):
            grp = sub[sub["outcome"].isin(["incorrect", "truncated"] if o == "wrong" else [o])]
            rec = {"run": run, "outcome": o, "window_steps": k}
            for w, st in windows.items():
                g = grp[grp["step"].isin(st)]
                if counted:
                    N, m, s = _pool(g["n"], g["mean_length"], g["std_length"].fillna(0))
                    rec[f"{w}_n"], rec[f"{w}_mean"] = N, m
                    rec[f"{w}_se"] = s / N ** 0.5 if N > 0 else float("nan")
                else:
                    rec[f"{w}_n"], rec[f"{w}_mean"] = float("nan"), float(g["mean_length"].mean())
                    rec[f"{w}_se"] = float("nan")
            tot = sub[sub["step"].isin(windows["last"])]["n"].sum()
            rec["last_share"] = rec["last_n"] / tot if tot > 0 else float("nan")
            rec["growth"] = rec["last_mean"] - rec["first_mean"]
            recs.append(rec)
    return pd.DataFrame(recs)


def verdict(df: pd.DataFrame, grpo: str = "grpo", drgrpo: str = "drgrpo", frac: float = 1 / 3,
            min_incorrect: int = 30) -> dict:
    """Does GRPO's incorrect-response length end higher and grow more than Dr. GRPO's?

    ``effect_shows`` is True when both hold for the ``incorrect`` group, False when neither or
    only one does, and None (inconclusive) when either run has fewer than ``min_incorrect``
    incorrect responses in its last window -- the task is then too easy to show a length bias
    on wrong answers. The same comparison for ``wrong`` (incorrect + truncated) is reported
    too: a length drift can push wrong answers past the token limit, out of "incorrect"."""
    summ = window_summary(df, frac).set_index(["run", "outcome"])

    def cmp(o):
        a, b = summ.loc[(grpo, o)], summ.loc[(drgrpo, o)]
        d_last, d_growth = a["last_mean"] - b["last_mean"], a["growth"] - b["growth"]
        se = float(np.hypot(a["last_se"], b["last_se"]))
        return {"grpo_first": a["first_mean"], "grpo_last": a["last_mean"], "grpo_growth": a["growth"],
                "drgrpo_first": b["first_mean"], "drgrpo_last": b["last_mean"], "drgrpo_growth": b["growth"],
                "last_diff": d_last, "growth_diff": d_growth, "last_diff_naive_se": se,
                "grpo_last_n": a["last_n"], "drgrpo_last_n": b["last_n"],
                "grpo_last_share": a["last_share"], "drgrpo_last_share": b["last_share"]}

    out = {o: cmp(o) for o in ("incorrect", "wrong", "correct")}
    inc = out["incorrect"]
    counts = [inc["grpo_last_n"], inc["drgrpo_last_n"]]  # NaN for the metrics fallback
    if any(np.isfinite(c) and c < min_incorrect for c in counts):
        shows = None
    else:
        shows = bool(inc["last_diff"] > 0 and inc["growth_diff"] > 0)
    window = int(summ["window_steps"].min())
    text = ("inconclusive: too few incorrect responses in the last window (the task is too easy)"
            if shows is None else
            f"GRPO's incorrect responses {'are' if inc['last_diff'] > 0 else 'are not'} longer than Dr. GRPO's "
            f"over the last {window} steps ({inc['grpo_last']:.1f} vs {inc['drgrpo_last']:.1f} tokens, "
            f"naive SE of the difference {inc['last_diff_naive_se']:.1f}) and {'grew' if inc['growth_diff'] > 0 else 'did not grow'} "
            f"more ({inc['grpo_growth']:+.1f} vs {inc['drgrpo_growth']:+.1f})")
    # Direction alone is the criterion (effect_shows); the words say whether the end gap clears
    # 2 naive SE too, so a text or figure title never claims more than its numbers.
    significant = bool(np.isfinite(inc["last_diff_naive_se"])
                       and abs(inc["last_diff"]) > 2 * inc["last_diff_naive_se"])
    if shows is not None:
        text += (" -> the length bias shows (end gap beyond 2 naive SE)" if shows and significant else
                 " -> the paper's direction, but not significant (within 2 naive SE of the end gap)" if shows else
                 f" -> no length bias ({'beyond' if significant else 'within'} 2 naive SE of the end gap)")
    clean = lambda v: None if isinstance(v, float) and not np.isfinite(v) else float(v)  # noqa: E731
    return {"effect_shows": shows, "end_gap_beyond_2se": significant, "summary": text, "window_steps": window,
            "criterion": "incorrect: grpo last-window mean > drgrpo's AND grpo growth > drgrpo's",
            **{o: {k: clean(v) for k, v in d.items()} for o, d in out.items()}}


def paired_by_prompt(run_a: str, run_b: str, frac: float = 1 / 3) -> dict | None:
    """Incorrect-response length of run a minus run b on the *same* prompts: runs with the same
    seed draw the same prompts at each step, so comparing per (step, prompt) removes the
    confound that a faster learner's remaining errors sit on different (e.g. longer) problems.
    Mean over the (step, prompt) pairs where both runs have incorrect responses, in the first and
    last ``frac`` of steps, with the standard error over pairs. None if the prompts differ."""
    def per_prompt(d):
        rows = [r for r in schema.read_rollouts(d) if outcome(r) == "incorrect"]
        df = pd.DataFrame({"step": [r["step"] for r in rows], "prompt_index": [r["prompt_index"] for r in rows],
                           "prompt": [r["prompt"] for r in rows], "length": [r["length"] for r in rows]})
        return df.groupby(["step", "prompt_index"]).agg(prompt=("prompt", "first"), length=("length", "mean"))

    j = per_prompt(run_a).join(per_prompt(run_b), lsuffix="_a", rsuffix="_b", how="inner")
    if j.empty or (j["prompt_a"] != j["prompt_b"]).any():
        return None
    steps = np.sort(j.index.get_level_values("step").unique())
    k = max(1, int(round(len(steps) * frac)))
    out = {}
    for w, st in (("first", steps[:k]), ("last", steps[-k:])):
        d = (j["length_a"] - j["length_b"])[j.index.get_level_values("step").isin(st)]
        out[f"{w}_mean_diff"] = float(d.mean()) if len(d) else float("nan")
        out[f"{w}_se"] = float(d.std(ddof=1) / len(d) ** 0.5) if len(d) > 1 else float("nan")
        out[f"{w}_pairs"] = int(len(d))
    return out


# ----------------------------------------------------------------------------- the driver
def _flag_list(extra_flags) -> list[str]:
    if extra_flags is True:  # fire read `--extra_flags "--x 1"` as a bare switch
        raise ValueError('write --extra_flags="--flag value ..." (with "=") or --extra_flags \'{flag: value}\'')
    if not extra_flags:
        return []
    if isinstance(extra_flags, dict):
        return [x for k, v in extra_flags.items() for x in (f"--{k}", str(v))]
    if isinstance(extra_flags, str):
        return shlex.split(extra_flags)
    return [str(x) for x in extra_flags]


def run_comparison(out_dir: str = "outputs/length_bias/compare", max_steps: int = 40, seed: int = 42,
                   extra_flags=None, runs_dir: str = "runs/length_bias", recheck_prob: float | None = None,
                   skip_existing: bool = False, smooth: int = 5, script: str = TRAIN_SCRIPT,
                   python: str = sys.executable, algos: str = "grpo,drgrpo") -> dict:
    """Train the miniature R1-Zero once per algorithm of ``algos`` (default ``grpo`` and
    ``drgrpo``; add e.g. ``gfpo``, the length-filtering counterpoint, or any registered one; same
    seed and steps), then write ``{out_dir}/length_by_outcome.{csv,png}`` (every algorithm) and
    ``verdict.json`` (the GRPO vs Dr. GRPO test, so both must be among them).

    ``extra_flags``: more train_zero_math.py flags (a dict, a list, or one string). The runs go
    to ``{runs_dir}/{algo}_seed{seed}`` (wiped first; ``skip_existing`` reuses a finished one),
    their logs next to them. ``recheck_prob``: pretrain the synthetic base model with this
    ``Mix.recheck_prob`` (the knob that makes re-check lines, i.e. length, more common) and
    train from it via ``--pretrain``."""
    extra = _flag_list(extra_flags)
    if recheck_prob is not None:
        if "--pretrain" in extra:
            raise ValueError("pass either recheck_prob or --pretrain in extra_flags, not both")
        from understand_r1_zero.synthetic import build_base_model

        extra += ["--pretrain", build_base_model(mix={"recheck_prob": float(recheck_prob)})]
    names = [a for a in (algos.split(",") if isinstance(algos, str) else algos) if a]
    if not {"grpo", "drgrpo"} <= set(names):
        raise ValueError(f"--algos {','.join(names)}: the verdict compares grpo and drgrpo, so list both")
    runs, timing = {}, {}
    for algo in names:
        save = os.path.join(runs_dir, f"{algo}_seed{seed}")
        runs[algo] = save
        if skip_existing and _finished(save, max_steps):
            print(f"[length_bias] reusing {save}", flush=True)
            timing[algo] = "reused"
            continue
        shutil.rmtree(save, ignore_errors=True)  # stale rollouts/ files would be appended to
        os.makedirs(runs_dir, exist_ok=True)
        cmd = [python, script, "--algo", algo, "--seed", str(seed), "--max_steps", str(max_steps),
               "--save_path", save, "--progress", "False", "--save_final_only_model", "True", *extra]
        log_path = save + ".log"
        print(f"[length_bias] {shlex.join(cmd)}  (log: {log_path})", flush=True)
        t0 = time.time()
        with open(log_path, "w") as log:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
        timing[algo] = round(time.time() - t0, 1)
        if rc != 0:
            with open(log_path) as f:
                tail = f.read()[-3000:]
            raise RuntimeError(f"training --algo {algo} failed (exit {rc}); last lines of {log_path}:\n{tail}")
    df, fig = length_by_outcome(runs, smooth=smooth)
    result = verdict(df)
    paired = paired_by_prompt(runs["grpo"], runs["drgrpo"])
    if paired:
        result["summary"] += (f"; on the same prompts, GRPO's incorrect responses are "
                              f"{paired['last_mean_diff']:+.1f} +- {paired['last_se']:.1f} tokens longer "
                              f"in the last window ({paired['first_mean_diff']:+.1f} +- {paired['first_se']:.1f} in the first)")
    result["incorrect_paired_by_prompt"] = paired
    # The runs' resolved configs (defaults included), so the verdict stays reproducible when a
    # default changes later.
    configs = {a: json.load(open(os.path.join(d, "config.json"))) for a, d in runs.items()}
    result.update({"max_steps": max_steps, "seed": seed, "extra_flags": extra, "runs": runs,
                   "train_seconds": timing, "train_config": configs})
    result["smooth"] = smooth
    os.makedirs(out_dir, exist_ok=True)
    df.to_csv(os.path.join(out_dir, "length_by_outcome.csv"), index=False)
    window_summary(df).to_csv(os.path.join(out_dir, "window_summary.csv"), index=False)
    _save_compare_figure(fig, result, out_dir)
    with open(os.path.join(out_dir, "verdict.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(f"[length_bias] {result['summary']}\n[length_bias] wrote {out_dir}/", flush=True)
    return result


def _save_compare_figure(fig, result: dict, out_dir: str) -> None:
    fig.suptitle(f"GRPO vs Dr. GRPO, seed {result['seed']}, {result['max_steps']} steps (lines: "
                 f"{result.get('smooth', 5)}-step rolling mean)\n" + textwrap.fill(result["summary"], 200), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    fig.savefig(os.path.join(out_dir, "length_by_outcome.png"), dpi=110)
    plt.close(fig)


def replot(out_dir: str = "analysis/results/length_bias") -> dict:
    """Redraw a ``compare`` result (``length_by_outcome.png``, and the verdict's words) from its
    stored CSV and verdict.json, without retraining: the numbers are not recomputed from runs
    (the paired-by-prompt figures need the rollouts, so they are kept as stored)."""
    df = pd.read_csv(os.path.join(out_dir, "length_by_outcome.csv"))
    with open(os.path.join(out_dir, "verdict.json")) as f:
        result = json.load(f)
    new = verdict(df)
    for k in ("incorrect", "wrong", "correct"):  # the stored numbers must be the CSV's
        for m, v in new[k].items():
            old = result[k][m]
            assert (v is None and old is None) or abs(v - old) <= 1e-9 * max(1.0, abs(old)), (k, m, v, old)
    summary, paired = new["summary"], result.get("incorrect_paired_by_prompt")
    if paired:
        summary += (f"; on the same prompts, GRPO's incorrect responses are {paired['last_mean_diff']:+.1f} +- "
                    f"{paired['last_se']:.1f} tokens longer in the last window ({paired['first_mean_diff']:+.1f} "
                    f"+- {paired['first_se']:.1f} in the first)")
    result.update(summary=summary, effect_shows=new["effect_shows"], end_gap_beyond_2se=new["end_gap_beyond_2se"])
    _save_compare_figure(plot_lengths(df, smooth=result.get("smooth", 5)), result, out_dir)
    with open(os.path.join(out_dir, "verdict.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(f"[length_bias] {summary}\n[length_bias] redrew {out_dir}/length_by_outcome.png", flush=True)
    return result


def _finished(run_dir: str, max_steps: int) -> bool:
    try:
        return max(r["step"] for r in schema.read_metrics(run_dir)) >= max_steps
    except (FileNotFoundError, ValueError):
        return False


# ----------------------------------------------------------------------------- CLI
def out_paths(out: str, stem: str) -> tuple[str, str]:
    """``out`` is a directory (existing, or ending in "/") or a file prefix: -> (csv, png)."""
    prefix = os.path.join(out, stem) if out.endswith(("/", os.sep)) or os.path.isdir(out) else out
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    return prefix + ".csv", prefix + ".png"


def plot(*run_dirs, out: str = "outputs/length_bias/", source: str = "auto", smooth: int = 1):
    """Plot runs: ``plot RUN_DIR [label=RUN_DIR ...] --out PREFIX_OR_DIR/``; writes CSV + PNG."""
    df, fig = length_by_outcome(list(run_dirs), source=source, smooth=smooth)
    csv, png = out_paths(out, "length_by_outcome")
    df.to_csv(csv, index=False)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    print(f"wrote {csv} and {png}")
    return csv, png


if __name__ == "__main__":
    import fire

    fire.Fire({"plot": plot, "compare": run_comparison, "replot": replot})
