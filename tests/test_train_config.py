"""Bad flags and bad inputs: one-line errors naming the problem and the fix, before any model loads."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from train_zero_math import UserError, setup  # noqa: E402
from understand_r1_zero.config import TrainConfig, flag_help, from_flags  # noqa: E402


@pytest.fixture()
def data_file(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_text("".join(json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                         for i in range(8)))
    return str(p)


def _err(**flags):
    with pytest.raises(UserError) as e:
        setup({"eval_data": "", **flags})
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_nonexistent_pretrain(data_file):
    assert "--pretrain '/no/such/model' does not exist" in _err(pretrain="/no/such/model",
                                                               prompt_data=data_file, input_key="question")


def test_nonexistent_prompt_data():
    assert "--prompt_data '/no/such.jsonl' does not exist" in _err(prompt_data="/no/such.jsonl")


def test_missing_input_key_lists_columns(data_file):
    msg = _err(prompt_data=data_file)  # default input_key 'problem'
    assert "no column 'problem'" in msg and "available columns: question, answer" in msg


def test_unknown_algo_and_template():
    assert "valid: " in _err(algo="ppo") and "drgrpo" in _err(algo="ppo")
    msg = _err(prompt_template="chatml")
    assert "valid names: qwen_math, r1, no" in msg


def test_non_positive_learning_rate():
    assert "--learning_rate must be > 0" in _err(learning_rate=0)
    assert "--learning_rate must be > 0" in _err(learning_rate=-1e-6)


def test_batch_sizes_that_do_not_divide():
    msg = _err(rollout_batch_size=3, num_samples=8, train_batch_size=16)
    assert "--train_batch_size 16 must divide" in msg
    cfg = TrainConfig(rollout_batch_size=4, num_samples=8, micro_batch_size=6)
    with pytest.raises(ValueError, match="micro_batch_size"):
        cfg.check_world(2)
    with pytest.raises(ValueError, match="divisible by the 3 processes"):
        TrainConfig(rollout_batch_size=4).check_world(3)


def test_unknown_flag_suggests_close_names():
    with pytest.raises(ValueError, match="unknown flag --learning_rte; did you mean --learning_rate"):
        from_flags(learning_rte=1e-6)


def test_type_coercion():
    cfg = from_flags(learning_rate="1e-6", max_steps=3.0, bf16="false", save_path=7, eval_tasks=("aime", "amc"))
    assert cfg.learning_rate == 1e-6 and cfg.max_steps == 3 and cfg.bf16 is False
    assert cfg.save_path == "7" and cfg.eval_tasks == "aime,amc"
    with pytest.raises(ValueError, match="--max_steps expects int"):
        from_flags(max_steps=2.5)
    assert TrainConfig(algo="dapo").clip_high == 0.28 and TrainConfig().clip_high == 0.2


def test_every_flag_is_documented():
    text = flag_help()
    for line in text.splitlines():
        assert line.split("): ", 1)[1].strip(), line


def test_cli_one_line_error_before_model_load(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train_zero_math.py"), "--pretrain", "/no/such/model",
                        "--save_path", str(tmp_path / "run")], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "DS_ACCELERATOR": "cpu"})
    assert r.returncode == 2
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert err == ["error: --pretrain '/no/such/model' does not exist; pass a local HF model directory, "
                   "a hub name like Qwen/Qwen2.5-Math-1.5B, or 'synthetic'"]
    assert not os.path.exists(tmp_path / "run")  # nothing written, nothing loaded


def test_cli_prompt_longer_than_context_fails_before_training(tmp_path, tiny_model_dir):
    """Checked once the actor is up, for every train and eval prompt: not at the step that draws it."""
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": "2"}) + "\n"
                            for q in ["1+1?", "long " * 1000, "2+0?", "0+2?"]))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train_zero_math.py"), "--pretrain", tiny_model_dir,
                        "--prompt_data", str(data), "--input_key", "question", "--eval_data", "",
                        "--actor", "hf", "--rollout_batch_size", "2", "--num_samples", "2",
                        "--micro_batch_size", "4", "--save_path", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "DS_ACCELERATOR": "cpu"})
    assert r.returncode == 2, r.stderr[-2000:]
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "1 prompt(s) do not fit the actor's context of 2048 positions " \
        "(longest: train prompt #1," in err[0] and "drop those prompts" in err[0], r.stderr[-2000:]
    assert not os.path.exists(tmp_path / "run" / "metrics.jsonl")


def test_use_wb_without_wandb_fails_at_setup(tmp_path, data_file):
    """A removed wandb fails in one line at setup, before any model loads."""
    blocked = tmp_path / "blocked" / "wandb"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('wandb removed for this test')\n")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train_zero_math.py"), "--use_wb", "True",
                        "--prompt_data", data_file, "--input_key", "question", "--eval_data", "",
                        "--save_path", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(tmp_path / "blocked")})
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [
        "error: --use_wb True needs wandb, which is not installed: `pip install wandb` (it is a "
        "dependency of this package) or pass --use_wb False"]
    assert not (tmp_path / "run").exists()


def test_use_wb_goes_offline_without_a_key(tmp_path, monkeypatch, capsys, data_file):
    from train_zero_math import _check_wandb

    for k in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(k, raising=False)
    (tmp_path / "netrc").write_text("")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    cfg = from_flags(use_wb=True, save_path=str(tmp_path / "run"))
    _check_wandb(cfg, rank0=True)
    assert os.environ["WANDB_MODE"] == "offline"
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("[wandb] no WANDB_API_KEY") and "wandb sync" in out[0]
    # a key but no server in reach: offline too; an explicit WANDB_MODE is left alone
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    _check_wandb(cfg, rank0=True)
    assert os.environ["WANDB_MODE"] == "offline"
    assert "not reachable" in capsys.readouterr().out
    monkeypatch.setenv("WANDB_MODE", "disabled")
    _check_wandb(cfg, rank0=True)
    assert os.environ["WANDB_MODE"] == "disabled"


def test_all_reduce_has_one_home():
    """Every all_reduce goes through learner.all_reduce_sums, whose tensor lives on the learner's
    device (NCCL refuses CPU tensors): no module calls dist.all_reduce itself."""
    import glob
    import re

    calls = {}
    for path in glob.glob(os.path.join(ROOT, "understand_r1_zero", "*.py")) + \
            [os.path.join(ROOT, "train_zero_math.py"), os.path.join(ROOT, "evaluate_model.py")]:
        n = len(re.findall(r"\ball_reduce\(", open(path).read()))
        if n:
            calls[os.path.relpath(path, ROOT)] = n
    assert calls == {os.path.join("understand_r1_zero", "learner.py"): 1}


def test_all_reduce_sums_single_process_and_device():
    import torch

    from understand_r1_zero.learner import all_reduce_sums

    out = all_reduce_sums({"a": 1, "b": torch.tensor(2.5), "c": torch.tensor([True, False]).sum()},
                          torch.device("cpu"))
    assert out == {"a": 1.0, "b": 2.5, "c": 1.0}


def _plant_run(root, data_file, checkpoint_step=None, **flags):
    """A run directory as training leaves it: config.json + metrics (+ a checkpoint)."""
    cfg = from_flags(prompt_data=data_file, input_key="question", eval_data="", save_path=str(root), **flags)
    os.makedirs(root, exist_ok=True)
    cfg.save(os.path.join(root, "config.json"))
    (root / "metrics.jsonl").write_text('{"step": 0}\n')
    if checkpoint_step is not None:
        ck = root / "checkpoints" / f"step_{checkpoint_step:05d}"
        os.makedirs(ck / "deepspeed")
        json.dump({"step": checkpoint_step, "world_size": 1, "config": cfg.to_dict()},
                  open(ck / "trainer_state.json", "w"))
    return cfg


def test_fresh_run_into_another_runs_dir_is_refused(tmp_path, data_file):
    run = tmp_path / "run"
    _plant_run(run, data_file, checkpoint_step=80)
    msg = _err(prompt_data=data_file, input_key="question", save_path=str(run), algo="grpo")
    assert msg.startswith(f"--save_path {run} holds another run (config.json, metrics.jsonl, checkpoints)")
    assert "--resume auto" in msg and "--overwrite True" in msg
    cfg, resume, _, _ = setup({"prompt_data": data_file, "input_key": "question", "eval_data": "",
                               "save_path": str(run), "algo": "grpo", "overwrite": True})
    assert resume is None and cfg.clear_save_path is True
    # an empty or new directory is fine
    cfg, _, _, _ = setup({"prompt_data": data_file, "input_key": "question", "eval_data": "",
                          "save_path": str(tmp_path / "new")})
    assert cfg.clear_save_path is False


def test_resume_auto_refuses_a_checkpoint_of_another_run(tmp_path, data_file):
    run = tmp_path / "run"
    _plant_run(run, data_file, checkpoint_step=80, algo="drgrpo", seed=42)
    msg = _err(prompt_data=data_file, input_key="question", save_path=str(run), algo="grpo", seed=1,
               resume="auto", max_steps=40)
    assert msg.startswith(f"--resume: the checkpoint {run}/checkpoints/step_00080 belongs to a run with other flags")
    assert "--algo 'drgrpo' -> 'grpo'" in msg and "--seed 42 -> 1" in msg and "max_steps" not in msg
    # the same run's flags (only its length and eval changed) resume
    cfg, resume, _, _ = setup({"prompt_data": data_file, "input_key": "question", "eval_data": "",
                               "save_path": str(run), "algo": "drgrpo", "resume": "auto", "max_steps": 100})
    assert resume.endswith("step_00080") and cfg.clear_save_path is False
    assert "processes 1 -> 2" in _err_env({"WORLD_SIZE": "2"}, prompt_data=data_file, input_key="question",
                                          save_path=str(run), resume="auto", rollout_batch_size=16)
    assert "--overwrite True deletes the run" in _err(prompt_data=data_file, input_key="question",
                                                      save_path=str(run), resume="auto", overwrite=True)


def _err_env(env, **flags):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return _err(**flags)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_resume_auto_before_the_first_checkpoint(tmp_path, data_file):
    """A run that died before its first save: its own leftovers are cleared; another run's are not."""
    run = tmp_path / "run"
    _plant_run(run, data_file, seed=3)
    cfg, resume, _, _ = setup({"prompt_data": data_file, "input_key": "question", "eval_data": "",
                               "save_path": str(run), "seed": 3, "resume": "auto"})
    assert resume is None and cfg.clear_save_path is True
    assert "holds another run" in _err(prompt_data=data_file, input_key="question", save_path=str(run),
                                       seed=4, resume="auto")


@pytest.mark.parametrize("case", ["run_dir", "hub_offline"])
def test_cli_pretrain_that_is_not_a_model_is_one_line(tmp_path, case):
    run = tmp_path / "runs" / "drgrpo"
    (run / "checkpoints" / "step_00080" / "model").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"algo": "drgrpo"}))
    spec = {"run_dir": str(run), "hub_offline": "Qwen/Qwen2.5-Math-1.5b"}[case]
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train_zero_math.py"), "--pretrain", spec,
                        "--save_path", str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1"})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert lines[0].startswith(f"error: --pretrain {spec!r}")
    assert ("is a training run, not a model" if case == "run_dir" else "could not reach the model hub") in lines[0]
    assert not (tmp_path / "out").exists()


def test_mvar_needs_whole_bundles_per_process():
    from_flags(algo="mvar").check_world(1)  # the defaults are consistent: 16 prompts, bundles of 4
    from_flags(algo="mvar").check_world(2)
    with pytest.raises(ValueError, match="not whole groups of --bundle_size 5; e.g. --rollout_batch_size 15"):
        from_flags(algo="mvar", bundle_size=5).check_world(1)
    with pytest.raises(ValueError, match=r"each of 2 process\(es\) gets 8 prompts"):
        from_flags(algo="mvar", bundle_size=16).check_world(2)


def test_resume_never_mixes_with_later_or_final_checkpoints(tmp_path, data_file):
    """A finished --save_final_only_model run is not "leftovers" to clear, and a resume from an
    earlier checkpoint than the directory's latest is refused."""
    run = tmp_path / "run"
    _plant_run(run, data_file, checkpoint_step=40)
    (run / "checkpoints" / "step_00080" / "model").mkdir(parents=True)  # the final, model-only save
    msg = _err(prompt_data=data_file, input_key="question", save_path=str(run), resume="auto")
    assert "has checkpoints after step_00040 (step_00080;" in msg
    import shutil
    shutil.rmtree(run / "checkpoints" / "step_00040")
    msg = _err(prompt_data=data_file, input_key="question", save_path=str(run), resume="auto")
    assert msg.startswith(f"--save_path {run} holds a finished run (step_00080 holds only the model")
