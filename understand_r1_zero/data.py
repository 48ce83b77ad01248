"""Loading prompt data and the seeded prompt order.

``--prompt_data`` / ``--eval_data`` accept a ``load_from_disk`` directory (Dataset or DatasetDict),
a local ``.jsonl`` / ``.json`` / ``.parquet`` file, a hub name, or the name of a generated task
(``GENERATED``: ``synthetic``, the demo's arithmetic, see ``synthetic.py``; ``countdown``, see
``countdown.py``). Every failure is a one-line error naming the fix, raised before any model
loads. Evaluation benchmarks load here too (``load_eval_tasks``), for training and
``evaluate_model.py`` alike.
"""

from __future__ import annotations

import os

import numpy as np

FILE_TYPES = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
BUILD_HINT = ("build it on a networked machine with `python scripts/build_eval_data.py --out data` "
              "(writes data/evaluation_suite) or pass --eval_data DIR")
# Generated tasks: name -> (module, function returning (train Dataset, eval Dataset), the reward
# that scores it). Fixed datasets (task seed 0) like any on disk, so runs with different --seed
# share them.
GENERATED = {
    "synthetic": ("understand_r1_zero.synthetic", "synthetic_datasets", "math"),
    "countdown": ("understand_r1_zero.countdown", "countdown_datasets", "countdown"),
}


def generated(name: str):
    """(train Dataset, eval Dataset) of the generated task ``name``."""
    import importlib

    module, fn, _ = GENERATED[name]
    return getattr(importlib.import_module(module), fn)()


def check_generated_reward(spec: str, reward: str, flag: str) -> None:
    """A generated task is scored by its own reward: --prompt_data countdown with --reward math
    would train on rewards that are always 0."""
    if spec in GENERATED and GENERATED[spec][2] != reward:
        raise ValueError(f"{flag} {spec} is scored by --reward {GENERATED[spec][2]}, not --reward {reward}; "
                         f"pass --reward {GENERATED[spec][2]} (or other data)")


def _looks_local(spec: str) -> bool:
    return (spec.startswith(("/", "./", "../", "~")) or os.path.splitext(spec)[1] in FILE_TYPES
            or spec.count("/") != 1)


def load_any(spec: str, what: str = "--prompt_data"):
    """Load a Dataset or DatasetDict from disk, a data file, or the hub."""
    import datasets

    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        try:
            return datasets.load_from_disk(path)
        except Exception as e:  # noqa: BLE001 - re-raised as a one-line user error
            raise ValueError(f"{what} {spec!r} is a directory but not a datasets.save_to_disk "
                             f"directory ({type(e).__name__}); save it with Dataset.save_to_disk") from None
    if os.path.isfile(path):
        ext = os.path.splitext(path)[1]
        if ext not in FILE_TYPES:
            raise ValueError(f"{what} {spec!r}: unsupported file type {ext!r}; use .jsonl, .json or .parquet")
        return datasets.load_dataset(FILE_TYPES[ext], data_files=path, split="train")
    if _looks_local(spec):
        raise FileNotFoundError(f"{what} {spec!r} does not exist; pass an existing directory or "
                                f".jsonl/.json/.parquet file, or a hub name like org/dataset")
    try:
        return datasets.load_dataset(spec)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{what} {spec!r} is not a local path and could not be loaded from the hub "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); check the name or "
                         f"pass a local path") from None


def pick_split(ds, split: str, what: str):
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise ValueError(f"{what} has no split {split!r}; available splits: {', '.join(ds)}")
        return ds[split]
    return ds


def check_keys(ds, keys, what: str):
    missing = [k for k in keys if k not in ds.column_names]
    if missing:
        flag = "--input_key/--output_key"
        raise ValueError(f"{what} has no column {missing[0]!r}; available columns: "
                         f"{', '.join(ds.column_names)}; set {flag}")


def load_prompts(spec: str, split: str, input_key: str, output_key: str, *,
                 limit: int = 0) -> tuple[list[str], list]:
    """Training (questions, answers). A ``GENERATED`` name is that task's train split."""
    if spec in GENERATED:
        ds, _ = generated(spec)
    else:
        ds = pick_split(load_any(spec, "--prompt_data"), split, f"--prompt_data {spec!r}")
    check_keys(ds, (input_key, output_key), f"--prompt_data {spec!r}")
    if limit:
        ds = ds.select(range(min(limit, len(ds))))
    if len(ds) == 0:
        raise ValueError(f"--prompt_data {spec!r} is empty")
    return list(ds[input_key]), list(ds[output_key])


def load_eval(spec: str, tasks: str, input_key: str, output_key: str, *,
              limit: int = 0) -> dict[str, list[dict]]:
    """Evaluation benchmarks: {task name: [{'problem', 'answer'}, ...]}. A ``GENERATED`` name is
    that task's held-out split (fixed: every run seed is scored on the same problems)."""
    if not spec:
        return {}
    if spec in GENERATED:
        _, ev = generated(spec)
        rows = [{"problem": p, "answer": a} for p, a in zip(ev[input_key], ev[output_key])]
        return {spec: rows[:limit] if limit else rows}
    names = [t for t in tasks.split(",") if t] or None
    return load_eval_tasks(spec, names, limit=limit or None, input_key=input_key, output_key=output_key)


def normalize_reference(ref):
    """A benchmark answer as graded and stored: floats that are integers become ``"142"`` (amc
    stores 142.0), strings are stripped (minerva's end in newlines), and a list of alternatives
    stays a list (any one counts as correct) unless it has a single element."""
    if isinstance(ref, (list, tuple)):
        alts = [normalize_reference(a) for a in ref]
        return alts[0] if len(alts) == 1 else alts
    if isinstance(ref, float) and ref.is_integer():
        return str(int(ref))
    return str(ref).strip()


def load_eval_tasks(eval_data: str, tasks=None, limit: int | None = None,
                    input_key: str = "problem", output_key: str = "answer") -> dict[str, list[dict]]:
    """{task: [{"problem": str, "answer": reference}, ...]} from a ``load_from_disk`` DatasetDict
    directory (one split per benchmark), a single Dataset directory or a .jsonl/.json/.parquet file
    (one task named after it), or a hub name. ``tasks``: names or a comma-separated string (None =
    every split, stored order); ``limit``: the first N problems of each task."""
    from datasets import DatasetDict

    spec = str(eval_data)
    path = os.path.expanduser(spec)
    hub_like = spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and "." not in spec
    if not os.path.exists(path):
        if not hub_like:
            raise FileNotFoundError(f"--eval_data {spec!r} does not exist; {BUILD_HINT}")
        try:
            ds = load_any(spec, "--eval_data")
        except (ValueError, FileNotFoundError) as e:
            raise FileNotFoundError(f"{e}; or {BUILD_HINT}") from None
    else:
        ds = load_any(spec, "--eval_data")
    if isinstance(ds, DatasetDict):
        splits = dict(ds)
    else:
        splits = {os.path.splitext(os.path.basename(os.path.normpath(path)))[0]: ds}
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    names = list(tasks) if tasks else list(splits)
    unknown = [t for t in names if t not in splits]
    if unknown:
        raise ValueError(f"--tasks {','.join(unknown)}: not in --eval_data {spec!r}; "
                         f"available: {', '.join(splits)}")
    out = {}
    for t in names:
        d = splits[t]
        check_keys(d, (input_key, output_key), f"--eval_data {spec!r} split {t!r}")
        if limit:
            d = d.select(range(min(int(limit), len(d))))
        if len(d) == 0:
            raise ValueError(f"--eval_data {spec!r} split {t!r} is empty")
        out[t] = [{"problem": str(p), "answer": normalize_reference(a)}
                  for p, a in zip(d[input_key], d[output_key])]
    return out


class PromptOrder:
    """A seeded permutation per epoch; ``position`` (prompts consumed) is all a resume needs."""

    def __init__(self, n: int, seed: int, position: int = 0):
        self.n, self.seed, self.position = n, seed, position

    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    @property
    def epoch(self) -> int:
        return self.position // self.n

    def next(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            e, i = divmod(self.position, self.n)
            take = min(k - len(out), self.n - i)
            out.extend(self._perm(e)[i : i + take].tolist())
            self.position += take
        return out
