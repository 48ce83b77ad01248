"""scripts/gpu_check.sh, run where no GPU is: the same script and training path on the tiny
preset, so the one-GPU check is known to work before a GPU is at hand."""

import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_check_script_runs_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_check.sh"), "--preset", "tiny", "--out", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT,
                       env={**os.environ, "DS_ACCELERATOR": "cpu"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.load(open(out))
    assert set(res["stages"]) == {"zero2", "zero3"}
    for stage in res["stages"].values():
        assert [s["step"] for s in stage["steps"]] == [1, 2, 3]
        assert [s["resumed"] for s in stage["steps"]] == [False, False, True]
        for s in stage["steps"]:
            assert s["mfu"] > 0 and s["learner_tok_s"] > 0 and s["generated_tok_s"] > 0 and s["peak_mem_gib"] > 0
            assert abs(s["generate_s"] + s["grade_s"] + s["train_s"] + s["sync_s"] + s["other_s"] - s["step_s"]) < 1e-6
        assert sorted(stage["eval_accuracy"]) == ["0", "2", "3"]  # step 0, each launch's end
    assert "MFU against 790 TFLOP/s" in r.stdout and "(resumed)" in r.stdout


def test_gpu_check_refuses_the_real_preset_without_a_gpu(tmp_path):
    r = subprocess.run(["python3", os.path.join(ROOT, "scripts", "gpu_check.py")], capture_output=True, text=True,
                       timeout=120, cwd=ROOT, env={**os.environ, "DS_ACCELERATOR": "cpu"})
    assert r.returncode == 1 and "no CUDA device visible" in r.stderr
