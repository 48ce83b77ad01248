"""Tiny end-to-end runs of train_zero_math.py: 1 and 2 processes, ZeRO 0 and 3, both actors,
the output schema, and resume equivalence."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from understand_r1_zero.learner import free_port

from safetensors.torch import load_file

from understand_r1_zero import schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "train_zero_math.py")


def _flags(model, save_path, **kw):
    f = dict(pretrain=model, prompt_data="synthetic", eval_data="synthetic", eval_limit=16,
             rollout_batch_size=4, num_samples=4, micro_batch_size=8, generate_max_length=64,
             eval_max_length=64, max_steps=2, learning_rate=1e-3, save_path=str(save_path),
             progress=False, grade_workers=1)
    f.update(kw)
    return [x for k, v in f.items() for x in (f"--{k}", str(v))]


def _train(flags, nproc=1, timeout=900):
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    if nproc == 1:
        cmd = [sys.executable, TRAIN]
    else:
        env["OMP_NUM_THREADS"] = "1"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_port", str(free_port()), TRAIN]
    r = subprocess.run(cmd + flags, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return r.stdout


def _check_run(run_dir, base_model, steps):
    rows = schema.read_metrics(run_dir)  # checks every required field
    assert [r["step"] for r in rows] == list(range(steps + 1))
    assert "eval/synthetic/accuracy" in rows[0] and "eval/average/accuracy" in rows[-1]
    for r in rows[1:]:
        assert 0 <= r["actor/reward_mean"] <= 1 and r["train/tokens"] > 0
    rollouts = schema.read_rollouts(run_dir)
    assert len(rollouts) == steps * 4 * 4
    assert {r["finish_reason"] for r in rollouts} <= {"stop", "length"}
    cfg = json.load(open(os.path.join(run_dir, "config.json")))
    assert cfg["max_steps"] == steps
    ckpt = os.path.join(run_dir, "checkpoints", f"step_{steps:05d}")
    assert os.path.exists(os.path.join(ckpt, "trainer_state.json"))
    assert not [d for d in os.listdir(os.path.dirname(ckpt)) if d.endswith(".tmp")]
    new, old = load_file(os.path.join(ckpt, "model", "model.safetensors")), \
        load_file(os.path.join(base_model, "model.safetensors"))
    moved = max((new[k] - old[k]).abs().max().item() for k in old)
    assert moved > 1e-5, "parameters did not change"
    return rows


@pytest.mark.parametrize("nproc,zero,actor,bf16", [(1, 0, "hf", False), (1, 3, "vllm", False),
                                                   (2, 0, "vllm", False), (2, 3, "hf", False),
                                                   (2, 3, "vllm", False), (1, 0, "vllm", True),
                                                   (2, 2, "hf", True)])
def test_train_runs_and_updates(demo_base_model, tmp_path, nproc, zero, actor, bf16):
    """bf16: DeepSpeed bf16 (fp32 gradient accumulation; ZeRO-0 runs as stage 1) with the actor
    in bf16, on this CPU's avx512_bf16."""
    out = _train(_flags(demo_base_model, tmp_path / "run", zero_stage=zero, actor=actor, bf16=bf16),
                 nproc=nproc)
    assert "summary: eval accuracy" in out
    rows = _check_run(tmp_path / "run", demo_base_model, 2)
    if bf16:
        from safetensors.torch import load_file

        saved = load_file(str(tmp_path / "run" / "checkpoints" / "step_00002" / "model" / "model.safetensors"))
        assert {t.dtype for t in saved.values()} == {__import__("torch").bfloat16}
        assert rows[1]["train/grad_norm"] > 0  # (a later step may earn no reward at all)


def test_resume_reproduces_uninterrupted_run(demo_base_model, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    flags = dict(max_steps=4, save_steps=2, eval_steps=0, actor="hf", num_ppo_epochs=2, train_batch_size=8)
    _train(_flags(demo_base_model, a, **flags))
    # Simulate a crash after step 3: B has A's checkpoint at step 2 and metrics up to step 3.
    os.makedirs(b / "checkpoints")
    shutil.copytree(a / "checkpoints" / "step_00002", b / "checkpoints" / "step_00002")
    rows_a = schema.read_metrics(a)
    schema.append_jsonl(str(b / "metrics.jsonl"), [r for r in rows_a if r["step"] <= 3])
    shutil.copy(a / "config.json", b / "config.json")
    os.makedirs(b / "rollouts")
    for step in (1, 2, 3):  # step 3's rollouts were written after the checkpoint: the resume redoes them
        shutil.copy(schema.rollout_path(str(a), step), schema.rollout_path(str(b), step))
    out = _train(_flags(demo_base_model, b, resume="auto", **flags))
    assert "[resume]" in out and "at step 2" in out
    rows_b = schema.read_metrics(b)
    assert [r["step"] for r in rows_b] == [0, 1, 2, 3, 4]
    for ra, rb in zip(rows_a[3:], rows_b[3:]):
        for k, v in ra.items():
            if k.startswith(("time/", "mem/")):  # wall clock and RSS are not the run's results
                continue
            if isinstance(v, float):
                assert rb[k] == pytest.approx(v, rel=1e-5, abs=1e-7), (ra["step"], k)
            else:
                assert rb[k] == v, (ra["step"], k)
    assert schema.read_rollouts(str(b)) == schema.read_rollouts(str(a))  # step 3 once, not twice
    wa = load_file(str(a / "checkpoints" / "step_00004" / "model" / "model.safetensors"))
    wb = load_file(str(b / "checkpoints" / "step_00004" / "model" / "model.safetensors"))
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-6



def test_deepspeed_launcher_two_processes(demo_base_model, tmp_path):
    """`deepspeed --num_gpus N train_zero_math.py` appends --local_rank=N to every rank's argv."""
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2",
           "--master_port", str(free_port()), TRAIN]
    r = subprocess.run(cmd + _flags(demo_base_model, tmp_path / "run", max_steps=1, eval_data="", zero_stage=2),
                       capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "2 process(es)" in r.stdout
    rows = schema.read_metrics(str(tmp_path / "run"))
    assert [row["step"] for row in rows] == [1]


def test_sleep_flag_runs_on_cpu(demo_base_model, tmp_path):
    """Issue 14's repro: --vllm_sleep True met a sleeping actor at the weight sync ("call wake()
    before load_weights()"). Sleep is a no-op on CPU, but its state machine is the GPU's."""
    out = _train(_flags(demo_base_model, tmp_path / "run", actor="hf", vllm_sleep=True, eval_steps=1))
    assert "summary: eval accuracy" in out
    _check_run(tmp_path / "run", demo_base_model, 2)


@pytest.mark.parametrize("nproc", [1, 2])
def test_stale_deepspeed_op_lock_does_not_hang(demo_base_model, tmp_path, nproc):
    """A build of DeepSpeed's CPU shared-memory op killed midway leaves its lock behind, and every
    later launch used to wait on it for ever. We never build that op: the run finishes (here
    under a timeout), names the stale lock in one line, and compiles nothing."""
    ext = tmp_path / "torch_extensions"
    lock = ext / "py311_cpu" / "deepspeed_shm_comm" / "lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    os.environ["TORCH_EXTENSIONS_DIR"] = str(ext)
    try:
        out = _train(_flags(demo_base_model, tmp_path / "run", max_steps=1, eval_data=""), nproc=nproc,
                     timeout=300)
    finally:
        del os.environ["TORCH_EXTENSIONS_DIR"]
    assert f"[deepspeed] stale op-build lock(s), left by a killed build: {lock};" in out
    assert sorted(p.name for p in lock.parent.iterdir()) == ["lock"]  # nothing was built
