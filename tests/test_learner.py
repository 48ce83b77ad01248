"""The learner's gradient does not depend on micro-batch size, process count or ZeRO stage.

One update on a fixed batch with gradient clipping active (so a wrong gradient *scale* changes
the weights, not only a wrong direction; Adam alone would hide a constant factor). The
pre-clipping gradient norm is compared too, at 1e-4 relative: that is where a scale error shows.

The weights are compared at 1e-4 absolute, 1% of one step (lr 1e-2). Adam's first step moves an
element by lr * g / (|g| + eps) with eps 1e-8, which magnifies float rounding of gradients near
eps by up to ~1e7: such elements legitimately differ by ~0.3% of a step between two summation
orders (micro-batches, processes, shared prompts), while a wrong gradient moves elements by O(lr).
"""

import os
import subprocess
import sys

import pytest

from understand_r1_zero.learner import free_port
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "learner_worker.py")


def _run(model_dir, out, algo, zero, micro, nproc=1, **extra):
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.path.dirname(HERE)}
    if nproc == 1:
        cmd = [sys.executable, WORKER]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_port", str(free_port()), WORKER]
    opts = [f"{k}={int(v)}" for k, v in extra.items()]
    r = subprocess.run(cmd + [model_dir, str(out), algo, str(zero), str(micro)] + opts,
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return torch.load(out, weights_only=False)


def _max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.parametrize("algo", ["drgrpo", "dapo", "grpo"])
def test_micro_batch_and_process_invariance(tiny_model_dir, tmp_path, algo):
    ref = _run(tiny_model_dir, tmp_path / "full.pt", algo, 0, 8)
    small = _run(tiny_model_dir, tmp_path / "mb2.pt", algo, 0, 2)
    two = _run(tiny_model_dir, tmp_path / "np2.pt", algo, 0, 2, nproc=2)
    gn = ref["stats"]["train/grad_norm"]
    assert gn > 0.05  # clipping was active, so a scale error would show in the weights
    for other in (small, two):
        assert other["stats"]["train/grad_norm"] == pytest.approx(gn, rel=1e-4)
        assert other["stats"]["train/loss"] == pytest.approx(ref["stats"]["train/loss"], rel=1e-4, abs=1e-7)
        assert _max_diff(ref["state"], other["state"]) < 1e-4


def test_zero3_two_processes_matches_zero0(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    ref = _run(tiny_model_dir, tmp_path / "z0.pt", "drgrpo", 0, 4)
    z3 = _run(tiny_model_dir, tmp_path / "z3.pt", "drgrpo", 3, 2, nproc=2)
    assert z3["stats"]["train/grad_norm"] == pytest.approx(ref["stats"]["train/grad_norm"], rel=1e-4)
    assert _max_diff(ref["state"], z3["state"]) < 1e-4
    init = load_file(os.path.join(tiny_model_dir, "model.safetensors"))
    moved = max((ref["state"][k] - init[k]).abs().max().item() for k in init)
    assert moved > 1e-4  # the update really changed the parameters


def test_shared_prompt_forward_matches_per_row_prompts(tiny_model_dir, tmp_path):
    """--share_prompts (each prompt's KV computed once, gradients summed over its G responses)
    gives the update that scoring every row's prompt separately gives, and so does gradient
    checkpointing (which turns sharing off)."""
    ref = _run(tiny_model_dir, tmp_path / "plain.pt", "grpo", 0, 8, share_prompts=False)
    for name, extra in (("shared", {}), ("ckpt", {"gradient_checkpointing": True})):
        other = _run(tiny_model_dir, tmp_path / f"{name}.pt", "grpo", 0, 8, **extra)
        assert other["stats"]["train/grad_norm"] == pytest.approx(ref["stats"]["train/grad_norm"], rel=1e-4)
        assert other["stats"]["train/loss"] == pytest.approx(ref["stats"]["train/loss"], rel=1e-4, abs=1e-7)
        assert _max_diff(ref["state"], other["state"]) < 1e-4


def test_cpu_init_builds_no_deepspeed_op(tmp_path):
    """init_distributed(cpu=True) must stop DeepSpeed compiling its shared-memory comm op. The
    patch once landed on the torch package instead (deepspeed.comm re-exports torch under the
    name `torch`), so on CPUs the op supports it still built, and a 2-rank run aborted in it."""
    code = ("from understand_r1_zero.learner import init_distributed; import sys; init_distributed(True); "
            "cdb = sys.modules['deepspeed.comm.comm'].cdb; assert cdb is not None and cdb.shm_comm_op is None, 'op built'; "
            "assert not hasattr(sys.modules['torch'], 'build_shm_op')")
    ext = tmp_path / "ext"
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "TORCH_EXTENSIONS_DIR": str(ext), "WORLD_SIZE": "1",
           "PYTHONPATH": os.path.dirname(HERE)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "built successfully" not in r.stdout and not ext.exists()


@pytest.mark.parametrize("nproc", [1, 2])
def test_masked_responses_still_count_in_drgrpos_normaliser(tiny_model_dir, tmp_path, nproc):
    """--truncated mask: a masked response adds nothing but still counts in Dr. GRPO's 1/G (oat's and
    TRL's normaliser). One update, so ratio 1 and the surrogate is -sum_i A_i |o_i| / (max_len N)
    over the unmasked i: the batch of learner_worker.py, its last response masked."""
    lengths = [1 + (5 * i) % 11 for i in range(8)]
    adv = [1.0, -0.5, 0.25, -0.75, 0.5, 0.0, -1.0, 1.5]
    want = -sum(a * n for a, n in zip(adv[:7], lengths[:7])) / (12 * 8)  # 7/96, not 7/84
    stats = _run(tiny_model_dir, tmp_path / "m.pt", "drgrpo", 0, 2, nproc=nproc, mask_last=1)["stats"]
    assert stats["train/loss"] == pytest.approx(want, rel=1e-5)
