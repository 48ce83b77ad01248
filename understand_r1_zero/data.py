"""Loading prompt data and the seeded prompt order.

``--prompt_data`` / ``--eval_data`` accept a ``load_from_disk`` directory (Dataset or DatasetDict),
a local ``.jsonl`` / ``.json`` / ``.parquet`` file, a hub name, or ``synthetic`` (the demo's
generated task, see ``synthetic.py``). Every failure is a one-line error naming the fix,
raised before any model loads.
"""

from __future__ import annotations

import os

import numpy as np

FILE_TYPES = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


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
    """Training (questions, answers). ``"synthetic"`` is the demo task's train split: a fixed
    dataset (task seed 0) like any on disk, so runs with different ``--seed`` share it."""
    if spec == "synthetic":
        from .synthetic import synthetic_datasets

        ds, _ = synthetic_datasets()
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
    """Evaluation benchmarks: {task name: [{'problem', 'answer'}, ...]}. ``"synthetic"`` is the
    demo task's held-out split (fixed, task seed 0: every run seed is scored on the same problems)."""
    if not spec:
        return {}
    if spec == "synthetic":
        from .synthetic import synthetic_datasets

        _, ev = synthetic_datasets()
        rows = [{"problem": p, "answer": a} for p, a in zip(ev[input_key], ev[output_key])]
        return {"synthetic": rows[:limit] if limit else rows}
    from .evaluation import load_eval_tasks

    names = [t for t in tasks.split(",") if t] or None
    return load_eval_tasks(spec, names, limit=limit or None, input_key=input_key, output_key=output_key)


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
