"""Every registered algorithm on the miniature: the embedded demo (same seed, same steps), its
held-out greedy accuracy and response length at step 0 and at the end, and the wall time.

    python benchmarks/bench_algorithms.py [--algos grpo,drgrpo,...] [--max_steps 80] [any train flag]

Writes benchmarks/results/algorithms.json and prints the README's markdown table. Each run is a
plain ``train_zero_math.py`` subprocess into its own --save_path; nothing is tuned per algorithm.
"""

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def run(algo: str, out_dir: str, flags: dict) -> dict:
    from understand_r1_zero import schema

    save = os.path.join(out_dir, algo)
    args = {"algo": algo, "save_path": save, "overwrite": True, "progress": False, **flags}
    cmd = [sys.executable, os.path.join(ROOT, "train_zero_math.py")] + [x for k, v in args.items()
                                                                        for x in (f"--{k}", str(v))]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.time() - t0
    if r.returncode:
        return {"algo": algo, "error": (r.stderr or r.stdout)[-500:]}
    ev = [row for row in schema.read_metrics(save) if "eval/average/accuracy" in row]
    a, b = ev[0], ev[-1]
    return {"algo": algo, "steps": b["step"], "acc_start": a["eval/average/accuracy"], "acc_end": b["eval/average/accuracy"],
            "len_start": a["eval/synthetic/response_len"], "len_end": b["eval/synthetic/response_len"],
            "acc_best": max(row["eval/average/accuracy"] for row in ev), "wall_s": wall}


def main(algos: str = "", out_dir: str = "/tmp/bench_algorithms", **flags):
    from understand_r1_zero.losses import ALGORITHMS

    names = [a for a in str(algos).split(",") if a] if algos else list(ALGORITHMS)
    rows = []
    for name in names:
        rows.append(run(name, out_dir, flags))
        print(json.dumps(rows[-1]), flush=True)
    path = os.path.join(ROOT, "benchmarks", "results", "algorithms.json")
    with open(path, "w") as f:
        json.dump({"flags": flags, "rows": rows, "machine": os.cpu_count()}, f, indent=1)
    print("| algorithm | eval accuracy (step 0 → end) | best | response length (step 0 → end) | wall time |")
    print("|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| `{r['algo']}` | failed: {r['error'][:80]} | | | |")
        else:
            print(f"| `{r['algo']}` | {r['acc_start']:.3f} → {r['acc_end']:.3f} | {r['acc_best']:.3f} | "
                  f"{r['len_start']:.1f} → {r['len_end']:.1f} | {r['wall_s']:.0f} s |")


if __name__ == "__main__":
    import fire

    fire.Fire(main)
