"""The one-command study (analysis/reproduce.py) end to end, shortened: one seed, a few steps,
a miniature continued for 20 steps. It checks that every stage runs and writes its files, not
the findings (those need the full run; its committed results are in analysis/results/)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_reproduce_short_writes_every_result(tmp_path, demo_base_model):
    out, runs = tmp_path / "results", tmp_path / "runs"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "analysis", "reproduce.py"), "--short", "True",
                        "--out", str(out), "--runs_dir", str(runs)], capture_output=True, text=True, cwd=ROOT,
                       timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for f in ("verdict.json", "templates/templates.png", "templates/base_accuracy.csv", "templates/rl_accuracy.csv",
              "question_sets/question_sets.png", "question_sets/accuracy.csv",
              "length_bias/length_by_outcome.png", "length_bias/length_by_outcome.csv", "length_bias/per_seed.csv",
              "self_reflection/self_reflection.png", "self_reflection/checks_per_response.csv"):
        assert (out / f).stat().st_size > 0, f
    v = json.load(open(out / "verdict.json"))
    assert v["sizes"]["seeds"] == [0] and v["sizes"]["length_steps"] == 3
    lb = v["length_bias"]
    assert set(lb["final_accuracy"]) == {"grpo", "drgrpo", "gfpo"} and lb["length_bias_shows"] is False  # one seed
    assert set(v["templates"]["base_accuracy_greedy"]) == {"no", "qwen_math", "r1", "4shot"}
    # every run's resolved config and seed is recorded
    assert len(v["runs"]) == 7 and all("seed" in c and "algo" in c for c in v["runs"].values())
    assert {c["seed"] for k, c in v["runs"].items() if "length_" in k} == {0}
