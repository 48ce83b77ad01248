"""Every paper recipe in examples/ spells out valid flags that fit an 8-GPU node."""

import os
import sys

import pytest

from understand_r1_zero.config import TrainConfig, from_flags
from understand_r1_zero.losses import ALGORITHMS

sys.path.insert(0, os.path.dirname(__file__))
from recipes import RECIPES, recipe_flags as _flags  # noqa: E402


def test_recipes_exist():
    names = {os.path.basename(r) for r in RECIPES}
    assert {"qwen2.5_math_1.5b_drgrpo.sh", "qwen2.5_math_7b_drgrpo.sh", "llama3.2_3b_r1_drgrpo.sh",
            "qwen2.5_math_1.5b_grpo.sh", "qwen2.5_1.5b_instruct_mvar.sh", "qwen2.5_0.5b_lora_drgrpo.sh"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=os.path.basename)
def test_recipe_flags_valid_and_complete(path):
    flags, toks = _flags(path)
    assert len(toks) == 2 * len(flags), "every token must be a --flag value pair"
    cfg = from_flags(**flags)
    cfg.check_world(8)
    fields = set(TrainConfig.__dataclass_fields__)
    # "every flag spelled out": all but presentation-only flags appear.
    # another algorithm's own flags (losses.Algorithm.flags) have no effect on this one
    others = {f for a in ALGORITHMS.values() for f in a.flags.values()} - set(ALGORITHMS[cfg.algo].flags.values())
    missing = fields - set(flags) - {"progress", "wb_run_name", "save_final_only_model", "overwrite"} - others
    assert not missing, f"{os.path.basename(path)} does not spell out {sorted(missing)}"
    if "mvar" in path:
        assert (cfg.bundle_size, cfg.mvar_alpha, cfg.mvar_beta, cfg.w_mix, cfg.num_samples, cfg.credit) == \
            (5, 0.2, 0.9, 1.5, 5, "std")
    elif cfg.lora_rank:  # the 4-GPU LoRA budget: LoRA's ~10x learning rate, X-R1's 1024-token responses
        cfg.check_world(4)
        assert (cfg.num_samples, cfg.generate_max_length, cfg.learning_rate, cfg.beta) == (8, 1024, 1e-5, 0.0)
        assert (cfg.lora_rank, cfg.lora_alpha, cfg.lora_target_modules) == (32, 64, "all-linear")
    else:
        assert (cfg.num_samples, cfg.generate_max_length, cfg.learning_rate, cfg.beta) == (8, 3000, 1e-6, 0.0)
        assert cfg.lr_scheduler == "constant"
