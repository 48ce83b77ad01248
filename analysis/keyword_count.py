"""Self-reflection keywords per response, correct vs incorrect (Dr. GRPO, arXiv 2503.20783,
Sec. 2.3 / Fig. 4: the base model already self-reflects, and reflection does not imply accuracy).

Keywords (``KEYWORDS``; case-insensitive; "whole word" = no letter, digit or underscore directly
before or after; a space in a phrase matches any run of whitespace):

    name            matches
    wait            wait
    hmm             hmm, hmmm, ...
    however         however
    recheck         recheck, rechecks, rechecked, rechecking
    re-check        re-check (+ s/ed/ing)
    double-check    double-check, double check, doublecheck (+ s/ed/ing)
    let me check    let me check, let's check, let us check
    let me verify   let me verify, let's verify, let us verify
    check:          "check:" (the synthetic task's re-check lines, "Check: 47+385=432. Yes.")
    re-examine      re-examine, reexamine (+ s/d/ing)
    reconsider      reconsider (+ s/ed/ing)
    re-evaluate     re-evaluate, reevaluate (+ s/d/ing)

Occurrences are found in one left-to-right scan of all patterns together, so overlapping
phrases count once (``double check:`` is one double-check) and ``total`` (the sum over keywords)
counts each occurrence once. A *reflective* response has ``total >= 1``.

Sources: a training run dir (``schema.read_rollouts``: per step, correct = reward > 0, every
other response incorrect, truncated included) or an evaluation output (``schema.read_samples``:
per task). Optionally an LLM judge labels each response reflective or not (``--judge True``, an
OpenAI-compatible chat endpoint set by ``URZ_JUDGE_BASE_URL`` / ``URZ_JUDGE_MODEL`` /
``URZ_JUDGE_API_KEY``).

    python analysis/keyword_count.py runs/grpo_seed42        # -> runs/grpo_seed42/keyword_counts.{csv,png}
    python analysis/keyword_count.py outputs/eval/model/samples.jsonl --judge True --judge_max 200
"""

from __future__ import annotations

import json
import os
import random
import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from understand_r1_zero import schema  # noqa: E402

_SUF = r"(?:s|ed|ing)?"
KEYWORDS: dict[str, str] = {
    "wait": r"wait",
    "hmm": r"hmm+",
    "however": r"however",
    "recheck": r"recheck" + _SUF,
    "re-check": r"re-check" + _SUF,
    "double-check": r"double[\s-]?check" + _SUF,
    "let me check": r"(?:let\s+me|let's|let\s+us)\s+check",
    "let me verify": r"(?:let\s+me|let's|let\s+us)\s+verify",
    "check:": r"check:",
    "re-examine": r"re-?examin(?:e|es|ed|ing)",
    "reconsider": r"reconsider" + _SUF,
    "re-evaluate": r"re-?evaluat(?:e|es|ed|ing)",
}
# One left-to-right scan over all patterns together: an occurrence is counted once, under the
# keyword that matches there ("double check:" is a double-check, not also a "check:").
# "(?<![\w-])": "re-check" is not also "check", "double-check" not also "re-check".
_LEFT, _RIGHT = r"(?<![\w-])", r"(?![\w])"
_SCAN = re.compile("|".join(f"(?P<k{i}>{_LEFT}{p}{'' if p.endswith(':') else _RIGHT})"
                            for i, p in enumerate(KEYWORDS.values())), re.I)
_NAMES = {f"k{i}": k for i, k in enumerate(KEYWORDS)}


def count_keywords(text: str) -> dict[str, int]:
    """{keyword: occurrences} for one response (see ``KEYWORDS``), plus ``total``."""
    counts = dict.fromkeys(KEYWORDS, 0)
    for m in _SCAN.finditer(text or ""):
        counts[_NAMES[m.lastgroup]] += 1
    counts["total"] = sum(counts.values())
    return counts


# ----------------------------------------------------------------------------- LLM judge
JUDGE_ENV = ("URZ_JUDGE_BASE_URL", "URZ_JUDGE_MODEL")  # required; URZ_JUDGE_API_KEY is optional
JUDGE_PROMPT = (
    "You label math solutions. Answer YES if the solution below shows self-reflection: it "
    "re-checks, verifies, questions or revises its own earlier reasoning or answer. Answer NO "
    "otherwise. Reply with one word, YES or NO.\n\nSolution:\n{response}"
)


class JudgeNotConfigured(RuntimeError):
    pass


def judge_config(env=None) -> dict:
    """{base_url, model, api_key} from the environment, or ``JudgeNotConfigured`` naming what is
    missing. The API key is optional: a local OpenAI-compatible server (vLLM) needs none."""
    env = os.environ if env is None else env
    missing = [k for k in JUDGE_ENV if not env.get(k)]
    if missing:
        raise JudgeNotConfigured(f"--judge needs the environment variable(s) {', '.join(missing)} "
                                 f"(and URZ_JUDGE_API_KEY if the endpoint wants one); set them or "
                                 f"run with --judge False")
    return {"base_url": env["URZ_JUDGE_BASE_URL"].rstrip("/"), "model": env["URZ_JUDGE_MODEL"],
            "api_key": env.get("URZ_JUDGE_API_KEY") or None}


def http_post(url: str, headers: dict, payload: dict, timeout: float = 60.0) -> dict:
    """The default transport: one JSON POST with the stdlib."""
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode())


def parse_judgement(reply: dict) -> bool | None:
    """YES -> True, NO -> False, from a chat-completions reply; anything else -> None."""
    try:
        text = reply["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        return None
    m = re.search(r"\b(yes|no)\b", text, re.I)
    return None if m is None else m.group(1).lower() == "yes"


def judge_reflection(responses: list[str], config: dict | None = None, transport=http_post,
                     workers: int = 4, max_chars: int = 8000) -> list[bool | None]:
    """One YES/NO judgement per response (None: the reply could not be read). ``transport(url,
    headers, payload) -> reply dict`` is injectable for tests; HTTP errors propagate."""
    cfg = config or judge_config()
    url = cfg["base_url"] + "/chat/completions"
    headers = {"Authorization": f"Bearer {cfg['api_key']}"} if cfg.get("api_key") else {}

    def one(text):
        payload = {"model": cfg["model"], "temperature": 0, "max_tokens": 4,
                   "messages": [{"role": "user", "content": JUDGE_PROMPT.format(response=text[:max_chars])}]}
        return parse_judgement(transport(url, headers, payload))

    with ThreadPoolExecutor(max(1, workers)) as ex:
        return list(ex.map(one, responses))


# ----------------------------------------------------------------------------- the probe
def _responses(source: str) -> tuple[pd.DataFrame, str]:
    """(one row per response: group, correct, response; the group column's name)."""
    if os.path.isdir(os.path.join(source, "rollouts")):
        rows = schema.read_rollouts(source)
        return pd.DataFrame({"step": [r["step"] for r in rows], "correct": [r["reward"] > 0 for r in rows],
                             "response": [r["response"] for r in rows]}), "step"
    rows = schema.read_samples(source)
    recs = [{"task": r["task"], "correct": s["reward"] > 0, "response": s["response"]}
            for r in rows for s in r["samples"]]
    return pd.DataFrame(recs), "task"


def keyword_counts(source: str, judge: bool = False, judge_max: int = 500, judge_seed: int = 0,
                   judge_transport=http_post):
    """Keyword counts per group (training step, or eval task) x outcome (correct / incorrect).

    df columns: the group (``step`` or ``task``), ``outcome``, ``n`` (responses), ``total_mean``
    (keywords per response), ``reflective_frac`` (share with >= 1 keyword), one mean count per
    keyword, and with ``judge`` ``judge_n`` / ``judge_frac`` (share the judge called reflective,
    over a seeded random subset of at most ``judge_max`` responses). Returns (df, figure)."""
    cfg = judge_config() if judge else None  # fail before reading anything
    resp, group = _responses(source)
    if resp.empty:
        raise ValueError(f"{source} holds no responses")
    counts = pd.DataFrame([count_keywords(t) for t in resp["response"]])
    resp = pd.concat([resp.reset_index(drop=True), counts], axis=1)
    resp["reflective"] = resp["total"] > 0
    resp["outcome"] = resp["correct"].map({True: "correct", False: "incorrect"})
    cols = ["total", *KEYWORDS]
    if judge:
        idx = sorted(random.Random(judge_seed).sample(range(len(resp)), min(judge_max, len(resp))))
        labels = judge_reflection(resp.loc[idx, "response"].tolist(), cfg, transport=judge_transport)
        resp["judge"] = pd.Series(labels, index=idx, dtype="object")
    g = resp.groupby([group, "outcome"])
    df = g[cols].mean().rename(columns={"total": "total_mean"})
    df.insert(0, "n", g.size())
    df.insert(2, "reflective_frac", g["reflective"].mean())
    if judge:
        judged = resp.dropna(subset=["judge"]).assign(judge=lambda d: d["judge"].astype(bool))
        jg = judged.groupby([group, "outcome"])["judge"]
        df["judge_n"] = jg.size().reindex(df.index, fill_value=0)
        df["judge_frac"] = jg.mean().reindex(df.index)
    df = df.reset_index()
    return df, plot_counts(df, group)


def plot_counts(df: pd.DataFrame, group: str):
    metrics = ["total_mean", "reflective_frac"] + (["judge_frac"] if "judge_frac" in df else [])
    titles = {"total_mean": "keywords per response", "reflective_frac": "share with >= 1 keyword",
              "judge_frac": "share the LLM judge calls reflective"}
    ylabels = {"total_mean": "keywords per response (mean)", "reflective_frac": "share of responses",
               "judge_frac": "share of judged responses"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        ax.set(title=titles[m], xlabel=group, ylabel=ylabels[m])
        wide = df.pivot(index=group, columns="outcome", values=m)
        if not (wide.fillna(0) > 0).any().any():  # say so, rather than draw a flat line on a +-0.04 axis
            ax.text(0.5, 0.5, "no keywords found" if m != "judge_frac" else "the judge found none",
                    transform=ax.transAxes, ha="center", va="center", color="grey", fontsize=11)
            ax.set_ylim(0, 1)
            ax.set_xticks([])
            continue
        if group == "step":
            wide.plot(ax=ax, marker=".", legend=False)
        else:
            wide.plot.bar(ax=ax, rot=30, legend=False)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    drawn = [ax.get_legend_handles_labels() for ax in axes[0] if ax.get_legend_handles_labels()[0]]
    if drawn:  # one legend for the figure, right of the axes, so it hides no peak
        fig.legend(*drawn[0], title="outcome", loc="center right", fontsize=9)
        fig.tight_layout(rect=(0, 0, 0.87, 1))
    else:
        fig.tight_layout()
    return fig


def main(source: str, out: str = "", judge: bool = False, judge_max: int = 500):
    """``SOURCE``: a training run dir or a samples.jsonl (or its eval dir). Writes CSV + PNG to
    ``--out`` (a dir/ or a prefix; default: ``keyword_counts.{csv,png}`` beside the source)."""
    if not out:
        out = (source if os.path.isdir(source) else os.path.dirname(os.path.abspath(source))) + os.sep
    if isinstance(judge, str):  # fire passes --judge False as a string only when quoted oddly
        judge = judge.strip().lower() in ("1", "true", "yes")
    try:
        df, fig = keyword_counts(source, judge=bool(judge), judge_max=int(judge_max))
    except JudgeNotConfigured as e:
        raise SystemExit(f"error: {e}") from None
    prefix = os.path.join(out, "keyword_counts") if out.endswith(("/", os.sep)) or os.path.isdir(out) else out
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    df.to_csv(prefix + ".csv", index=False)
    fig.savefig(prefix + ".png", dpi=110)
    plt.close(fig)
    print(f"wrote {prefix}.csv and {prefix}.png")


if __name__ == "__main__":
    import fire

    fire.Fire(main)
