"""Every paper recipe runs, in miniature, on CPU: its exact behavioural flags under
``torchrun --nproc_per_node 2`` (``--actor vllm --vllm_sleep True --bf16 True --zero_stage ..
--gradient_checkpointing True --resume auto --use_wb True ...``), with only the model, the data
and the sizes changed (``recipes.SIZE_FLAGS``). Then a second launch with the same
``--save_path`` must resume from the first one's checkpoint and continue.

Recipes whose behavioural flags coincide share a run (``recipes.groups``); every distinct
combination runs. The miniature keeps each recipe's shape: two optimizer updates per step (the
recipes take several), an evaluation at step 0 and at the last step, a checkpoint at the end.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from understand_r1_zero import schema
from understand_r1_zero.config import from_flags
from understand_r1_zero.learner import free_port

sys.path.insert(0, os.path.dirname(__file__))
from recipes import SIZE_FLAGS, groups, recipe_flags  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUPS = groups()
EVAL_TASKS = ("aime", "amc", "math", "minerva", "olympiad_bench")


@pytest.fixture(scope="module")
def mini_data(tmp_path_factory):
    """A 64-prompt train set and a 5-benchmark eval set (2 problems each), from the demo task
    the demo base model was pretrained on, saved the way scripts/build_eval_data.py saves the
    real ones (load_from_disk DatasetDicts)."""
    from datasets import DatasetDict

    from understand_r1_zero.synthetic import synthetic_datasets

    root = tmp_path_factory.mktemp("recipe_data")
    train, ev = synthetic_datasets()
    DatasetDict({"train": train.select(range(64))}).save_to_disk(str(root / "train"))
    DatasetDict({t: ev.select(range(2 * k, 2 * k + 2)) for k, t in enumerate(EVAL_TASKS)}).save_to_disk(
        str(root / "eval"))
    return str(root / "train"), str(root / "eval")


def _miniature(flags: dict, model: str, data, save_path: str, max_steps: int) -> dict:
    bundle = int(flags.get("bundle_size", 1)) if flags["algo"] == "mvar" else 1
    prompts = 2 * bundle if bundle > 1 else 2  # per rank: whole MVaR bundles
    G = 4
    size = dict(pretrain=model, prompt_data=data[0], eval_data=data[1], max_steps=max_steps,
                rollout_batch_size=2 * prompts, num_samples=G, generate_max_length=48,
                eval_max_length=48, train_batch_size=prompts * G, micro_batch_size=prompts * G // 2,
                grade_workers=1, vllm_gpu_ratio=0.05, save_path=save_path)
    assert set(size) == SIZE_FLAGS
    return {**flags, **{k: str(v) for k, v in size.items()}}


def _launch(flags: dict, timeout=900):
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
           "OMP_NUM_THREADS": "1", "WANDB_MODE": "", "WANDB_API_KEY": ""}
    env = {k: v for k, v in env.items() if v != "" or k not in ("WANDB_MODE", "WANDB_API_KEY")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(free_port()), os.path.join(ROOT, "train_zero_math.py")]
    cmd += [x for k, v in flags.items() for x in (f"--{k}", v)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("recipes", list(GROUPS.values()),
                         ids=["+".join(os.path.basename(r)[:-3] for r in g) for g in GROUPS.values()])
def test_recipe_runs_and_resumes(recipes, demo_base_model, mini_data, tmp_path):
    flags, _ = recipe_flags(recipes[0])
    for k in ("actor", "vllm_sleep", "bf16", "gradient_checkpointing", "resume", "use_wb"):
        assert k in flags, f"{recipes[0]} no longer sets --{k}: update this test's docstring"
    run = str(tmp_path / "run")

    out1 = _launch(_miniature(flags, demo_base_model, mini_data, run, max_steps=1))
    assert "2 process(es)" in out1 and "[resume]" not in out1
    assert "[wandb]" in out1 and "offline" in out1  # no key here: --use_wb True logs offline
    rows = schema.read_metrics(run)
    assert [r["step"] for r in rows] == [0, 1]
    assert "eval/math/accuracy" in rows[0] and "eval/average/accuracy" in rows[1]
    ckpt1 = os.path.join(run, "checkpoints", "step_00001")
    state = json.load(open(os.path.join(ckpt1, "trainer_state.json")))
    assert state["world_size"] == 2 and state["config"]["bf16"] is True
    assert os.path.isdir(os.path.join(ckpt1, "deepspeed"))
    want = from_flags(**flags).to_dict()  # the recipe's values, coerced as the CLI coerces them
    for k in flags:  # the run ran the recipe's behaviour, not a default
        if k not in SIZE_FLAGS:
            assert state["config"][k] == want[k], k
    r1 = rows[1]
    assert r1["train/tokens"] > 0 and math.isfinite(r1["train/grad_norm"]) and math.isfinite(r1["train/loss"])
    if 0 < r1["actor/reward_mean"] < 1:  # some advantage is non-zero (the r1 recipes earn 0 here)
        assert r1["train/grad_norm"] > 0
    if flags["algo"] == "mvar":  # the tracker is visible: no quantile before its first update
        assert math.isnan(r1["mvar/q_alpha_used"] if r1["mvar/q_alpha_used"] is not None else float("nan"))
        assert r1["mvar/q_alpha_tracked"] == r1["mvar/q_alpha_batch"] <= r1["mvar/q_beta_tracked"]

    out2 = _launch(_miniature(flags, demo_base_model, mini_data, run, max_steps=2))
    assert f"[resume] from {ckpt1} at step 1" in out2
    rows = schema.read_metrics(run)
    assert [r["step"] for r in rows] == [0, 1, 2]
    if flags["algo"] == "mvar":  # the resumed step used the checkpointed tracker's quantiles
        assert rows[2]["mvar/q_alpha_used"] == pytest.approx(rows[1]["mvar/q_alpha_tracked"])
    assert len(schema.read_rollouts(run)) == 2 * int(_miniature(flags, "", ("", ""), "", 1)["rollout_batch_size"]) * 4
    assert os.path.isdir(os.path.join(run, "checkpoints", "step_00002", "model"))
    assert any(d.startswith("offline-run") for d in os.listdir(os.path.join(run, "wandb")))

