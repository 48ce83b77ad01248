"""Build the five-benchmark evaluation suite and the training sets in ``load_from_disk`` format.

Run once on a machine with network access (the hub datasets below are public)::

    python scripts/build_eval_data.py --out data                 # everything
    python scripts/build_eval_data.py --out data --only evaluation_suite

writes ``data/evaluation_suite`` (a DatasetDict: aime, amc, math, minerva, olympiad_bench, each with
``problem`` and ``answer``; ``evaluate_model.py``'s default ``--eval_data``) and ``data/train/<name>``
(DatasetDicts with a ``train`` split). Copy ``data/`` to offline machines.

Each source has a pure converter (hub records in -> ``{"problem", "answer"}`` records out), so the
conversion rules are tested offline (``tests/test_evaluation.py``). ``answer`` is a string (aime,
amc, math) or a list of accepted alternatives (minerva, olympiad_bench; any one is graded correct).
"""

from __future__ import annotations

import os
import re

# name -> (hub id, configs, splits, converter name, expected size). Public copies of the benchmarks
# used by Dr. GRPO (arXiv 2503.20783, Sec. 4): AIME 2024, AMC (the 83 AIMO-validation problems),
# MATH-500, Minerva Math, OlympiadBench (open-ended, text-only, maths, English, competition).
EVAL_SOURCES = {
    "aime": ("AI-MO/aimo-validation-aime", [None], ["train"], "convert_aime", 30),
    "amc": ("AI-MO/aimo-validation-amc", [None], ["train"], "convert_amc", 83),
    "math": ("HuggingFaceH4/MATH-500", [None], ["test"], "convert_math500", 500),
    "minerva": ("math-ai/minervamath", [None], ["test"], "convert_minerva", 272),
    "olympiad_bench": ("Hothan/OlympiadBench", ["OE_TO_maths_en_COMP"], ["train"],
                       "convert_olympiad_bench", 675),
}
MATH_SUBJECTS = ["algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                 "number_theory", "prealgebra", "precalculus"]
TRAIN_SOURCES = {
    # The paper's MATH level 3-5 set: MATH train + test, levels 3-5, minus the MATH-500 problems.
    "math_lvl3to5_8k": ("EleutherAI/hendrycks_math", MATH_SUBJECTS, ["train", "test"],
                        "convert_math_train", None),
    "gsm_8k": ("openai/gsm8k", ["main"], ["train", "test"], "convert_gsm8k", 8792),
}


# ----------------------------------------------------------------------------- pure converters
def _first(rec: dict, *keys):
    for k in keys:
        if rec.get(k) not in (None, ""):
            return rec[k]
    raise KeyError(f"record has none of {keys}; it has {sorted(rec)}")


def all_boxed(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}`` in order, braces balanced."""
    out, i = [], 0
    while True:
        m = re.compile(r"\\(?:boxed|fbox)\s*\{").search(text, i)
        if not m:
            return out
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth:
            return out  # unbalanced: ignore the rest
        out.append(text[m.end():j - 1].strip())
        i = j


def last_boxed(text: str) -> str | None:
    b = all_boxed(text)
    return b[-1] if b else None


def _int_str(x) -> str:
    """142.0 -> "142" (AMC answers are integers stored as floats)."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x).strip()


def _alternatives(x) -> list[str]:
    """A deduplicated list of accepted answers. Always a list, even of one: an Arrow column
    cannot mix strings and lists."""
    alts = x if isinstance(x, (list, tuple)) else [x]
    alts = list(dict.fromkeys(_int_str(a) for a in alts if a is not None and str(a).strip()))
    if not alts:
        raise ValueError("record has no answer")
    return alts


def convert_aime(records, year: int = 2024) -> list[dict]:
    """AIME problems of ``year``, picked by the ``url`` (".../2024_AIME_I_Problems/...") or ``year``."""
    out = []
    for r in records:
        tag = str(r.get("year", "")) + " " + str(r.get("url", ""))
        if str(year) in tag:
            out.append({"problem": _first(r, "problem", "Problem").strip(),
                        "answer": _int_str(_first(r, "answer", "Answer"))})
    return out


def convert_amc(records) -> list[dict]:
    return [{"problem": _first(r, "problem").strip(), "answer": _int_str(_first(r, "answer"))}
            for r in records]


def convert_math500(records) -> list[dict]:
    """``answer`` as given; a record without one uses the last ``\\boxed{}`` of its solution."""
    return [{"problem": r["problem"].strip(),
             "answer": str(r.get("answer") or last_boxed(r["solution"])).strip()} for r in records]


def convert_minerva(records) -> list[dict]:
    """Minerva Math: ``answer`` if present, else every distinct ``\\boxed{}`` of the solution
    (some solutions box two accepted forms, e.g. 0.01 and 0.02 for a rounding-dependent value)."""
    out = []
    for r in records:
        ans = r.get("answer")
        if ans in (None, "", []):
            ans = all_boxed(_first(r, "solution"))
        out.append({"problem": _first(r, "problem", "question").strip(), "answer": _alternatives(ans)})
    return out


def convert_olympiad_bench(records) -> list[dict]:
    """OlympiadBench: ``question`` (after its ``context`` when one is given), ``final_answer``
    (a list; entries often wrapped in ``$``)."""
    out = []
    for r in records:
        q = _first(r, "question", "problem").strip()
        if r.get("context"):
            q = str(r["context"]).strip() + "\n" + q
        ans = _first(r, "final_answer", "answer")
        ans = [str(a).strip().strip("$").strip() for a in (ans if isinstance(ans, list) else [ans])]
        out.append({"problem": q, "answer": _alternatives(ans)})
    return out


def convert_gsm8k(records) -> list[dict]:
    """GSM8K: the number after ``####``, thousands commas removed."""
    return [{"problem": r["question"].strip(),
             "answer": r["answer"].split("####")[-1].strip().replace(",", "")} for r in records]


def convert_math_train(records, levels=(3, 4, 5), exclude: set | None = None) -> list[dict]:
    """MATH records of the given levels ("Level 3"), answer = last ``\\boxed{}`` of the solution;
    problems in ``exclude`` (the MATH-500 test problems) are dropped so training never sees them."""
    out = []
    for r in records:
        m = re.search(r"\d+", str(r.get("level", "")))
        if not m or int(m.group()) not in levels or r["problem"].strip() in (exclude or set()):
            continue
        ans = last_boxed(r["solution"])
        if ans is not None:
            out.append({"problem": r["problem"].strip(), "answer": ans})
    return out


# ----------------------------------------------------------------------------- download and save
def _fetch(hub_id: str, configs, splits) -> list[dict]:
    import datasets

    recs = []
    for cfg in configs:
        for split in splits:
            recs.extend(datasets.load_dataset(hub_id, cfg, split=split).to_list())
    return recs


def _check_size(name: str, rows: list, expected) -> None:
    if expected is not None and len(rows) != expected:
        print(f"warning: {name} has {len(rows)} problems, expected {expected}: the hub copy changed?")


def main(out: str = "data", only: str = ""):
    """Build OUT/evaluation_suite and OUT/train/<name>. --only: evaluation_suite, train, or one name."""
    import datasets

    want = {w.strip() for w in str(only).split(",") if w.strip()}

    def wanted(name, group):
        return not want or name in want or group in want

    g = globals()
    suite = {}
    for name, (hub_id, cfgs, splits, conv, expected) in EVAL_SOURCES.items():
        if wanted(name, "evaluation_suite"):
            rows = g[conv](_fetch(hub_id, cfgs, splits))
            _check_size(name, rows, expected)
            suite[name] = datasets.Dataset.from_list(rows)
            print(f"{name}: {len(rows)} problems from {hub_id}")
    if suite:
        path = os.path.join(out, "evaluation_suite")
        datasets.DatasetDict(suite).save_to_disk(path)
        print(f"wrote {path}")
    math500 = None
    for name, (hub_id, cfgs, splits, conv, expected) in TRAIN_SOURCES.items():
        if not wanted(name, "train"):
            continue
        recs = _fetch(hub_id, cfgs, splits)
        if conv == "convert_math_train":
            if math500 is None:
                math500 = {r["problem"].strip() for r in _fetch("HuggingFaceH4/MATH-500", [None], ["test"])}
            rows = convert_math_train(recs, exclude=math500)
        else:
            rows = g[conv](recs)
        _check_size(name, rows, expected)
        path = os.path.join(out, "train", name)
        datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(path)
        print(f"wrote {path}: {len(rows)} problems from {hub_id}")


if __name__ == "__main__":
    import fire

    fire.Fire(main)
