"""LoRA (--lora_rank): the merge by hand, the weight sync into both actors, the reference model,
the learner (ZeRO-0 vs ZeRO-3, optimizer state for the adapter alone), one-line errors, exact
resume, the merged checkpoint, and the demo learning with LoRA."""

import os
import shutil
import sys
from types import SimpleNamespace

import pytest
import torch

from understand_r1_zero import lora, schema
from understand_r1_zero.rollout import collate_grouped, response_logprobs

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from test_learner import _run as run_learner  # noqa: E402
from test_train_e2e import _flags, _train  # noqa: E402
from train_zero_math import UserError, setup  # noqa: E402

PROMPTS = ["What is 1 + 2?", "Let x be the number of ways. Find x.", "Question: What is 7 * 8?"]


def _cfg(rank=4, alpha=8.0, targets="all-linear", seed=0):
    return SimpleNamespace(lora_rank=rank, lora_alpha=alpha, lora_dropout=0.0, lora_target_modules=targets, seed=seed)


def _adapted(model_dir, seed=0, std=0.5, **kw):
    """The tiny model under a LoRA adapter whose B is random (peft starts it at 0: no change)."""
    from transformers import AutoModelForCausalLM

    model = lora.wrap(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), _cfg(**kw))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model.eval()


def test_merged_weight_is_w_plus_scaled_ba_by_hand():
    """One 4 -> 3 layer, r = 1, alpha = 2: scale alpha / r = 2, and B A is an outer product."""
    from peft import LoraConfig, get_peft_model

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.proj(x)

    net = get_peft_model(Net(), LoraConfig(r=1, lora_alpha=2, target_modules=["proj"]))
    layer = net.get_base_model().proj
    with torch.no_grad():
        layer.base_layer.weight.copy_(torch.arange(12.0).view(3, 4))
        layer.base_layer.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
        layer.lora_A["default"].weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))  # A [1, 4]
        layer.lora_B["default"].weight.copy_(torch.tensor([[1.0], [0.0], [-1.0]]))  # B [3, 1]
    got = dict(lora.merged_weights(net))
    assert set(got) == {"proj.weight", "proj.bias"}  # the base model's names; A and B folded in
    want = torch.tensor([[0.0 + 2, 1 + 4, 2 + 6, 3 + 8],  # W + 2 * B A, row by row
                         [4.0, 5, 6, 7],
                         [8.0 - 2, 9 - 4, 10 - 6, 11 - 8]])
    assert torch.equal(got["proj.weight"], want) and torch.equal(got["proj.bias"], torch.tensor([1.0, 2, 3]))
    x = torch.randn(5, 4)
    with torch.no_grad():  # peft's forward (base + scale * B A x) is the merged layer's
        assert torch.allclose(net(x), x @ want.T + got["proj.bias"], atol=1e-5)


def test_targets_all_linear_and_bad_input(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    every = lora.targets(model, "all-linear", 4)
    assert len(every) == 2 * 7 and not any("lm_head" in n for n in every)  # 7 linears per layer, no head
    assert lora.targets(model, "q_proj, self_attn.v_proj", 4) == [
        "model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj",
        "model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.v_proj"]
    with pytest.raises(ValueError, match=r"'qkv' matches no linear layer .* its linear modules are: "
                                         r"down_proj,gate_proj,k_proj,o_proj,q_proj,up_proj,v_proj$"):
        lora.targets(model, "q_proj,qkv", 4)
    with pytest.raises(ValueError, match="'lm_head' matches no linear layer"):
        lora.targets(model, "lm_head", 4)
    # k_proj is 64 -> 32 (one KV head of dim 32): rank 33 does not fit it, 32 does
    with pytest.raises(ValueError, match=r"--lora_rank 33 exceeds the width of model.layers.0.self_attn.k_proj "
                                         r"\(64 in, 32 out\): pick --lora_rank <= 32"):
        lora.targets(model, "all-linear", 33)
    assert lora.targets(model, "q_proj", 64)


def _setup_err(**flags):
    with pytest.raises(UserError) as e:
        setup({"eval_data": "", **flags})
    assert "\n" not in str(e.value)
    return str(e.value)


def test_cli_errors_are_one_line_before_models_load(tiny_model_dir, tmp_path):
    kw = dict(pretrain=tiny_model_dir, save_path=str(tmp_path / "run"))
    assert "--lora_rank 100 exceeds the width of" in _setup_err(lora_rank=100, **kw)
    assert "'attn' matches no linear layer of --pretrain" in _setup_err(lora_rank=4, lora_target_modules="attn", **kw)
    assert "exceeds the width of model.layers.0.self_attn.k_proj (128 in, 64 out)" in \
        _setup_err(pretrain="synthetic", lora_rank=65, save_path=str(tmp_path / "s"))  # no build needed
    assert _setup_err(lora_alpha=16, **kw) == ("--lora_alpha has no effect without LoRA: pass --lora_rank R "
                                               "(e.g. 16) or leave it unset")
    assert "--lora_dropout must be in [0, 1)" in _setup_err(lora_rank=4, lora_dropout=1.0, **kw)
    # a checkpoint made with LoRA, resumed without it, and the reverse
    import json

    from understand_r1_zero.config import from_flags

    for saved, now, want in ((8, 0, "made with LoRA (--lora_rank 8), but this run sets --lora_rank 0; pass --lora_rank 8"),
                             (0, 8, "made without LoRA (full fine-tuning), but this run sets --lora_rank 8; drop --lora_rank")):
        run = tmp_path / f"r{saved}"
        ck = run / "checkpoints" / "step_00002"
        os.makedirs(ck / "deepspeed")
        stored = from_flags(pretrain=tiny_model_dir, save_path=str(run), lora_rank=saved).to_dict()
        if not saved:
            del stored["lora_rank"], stored["lora_alpha"]  # a checkpoint from before the LoRA flags
        (ck / "trainer_state.json").write_text(json.dumps({"step": 2, "world_size": 1, "config": stored}))
        (run / "config.json").write_text(json.dumps(stored))
        msg = _setup_err(pretrain=tiny_model_dir, save_path=str(run), resume="auto", lora_rank=now)
        assert msg == f"--resume: the checkpoint {ck} was {want} to continue it, or start a new run in a new --save_path"


def test_adapter_disabled_is_the_base_model(tiny_model_dir):
    """The reference policy under LoRA: the same module, adapter off, scores as the base model."""
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    model = _adapted(tiny_model_dir)
    ids = torch.randint(3, 400, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, ref, adapted = base(ids).logits, lora.AdapterDisabled(model)(input_ids=ids).logits, model(ids).logits
    assert torch.allclose(ref, want, atol=1e-5)
    assert (adapted - want).abs().max() > 0.1  # and the adapter, switched back on, is not the base


@pytest.fixture(params=["hf", "vllm"])
def actor(request, tiny_model_dir):
    if request.param == "vllm":
        yield request.getfixturevalue("vllm_actor")
        return
    from understand_r1_zero.actor import make_actor

    with make_actor("hf", tiny_model_dir, seed=0) as a:
        yield a


def test_sync_into_actor_matches_peft_logprobs(actor, tiny_model_dir):
    """The merged stream loads into each actor under the base model's names, and the actor's
    sampled logprobs are then the peft model's (the full-parameter test's tolerance, fp32)."""
    from transformers import AutoModelForCausalLM

    model = _adapted(tiny_model_dir, seed=1)
    orig = dict(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).named_parameters())
    try:
        assert actor.load_weights(lora.merged_weights(model)) == len(orig)
        flat = [s for g in actor.generate(PROMPTS, n=4, temperature=0.7, max_tokens=24, seed=5) for s in g]
    finally:  # the session's vLLM engine leaves as it came in
        actor.load_weights(iter(orig.items()))
    batch = collate_grouped(flat, pad_id=0)
    with torch.no_grad():
        lp = response_logprobs(model, batch, temperature=0.7)  # [B, Lr], the learner's scoring
        base = response_logprobs(lora.AdapterDisabled(model), batch, temperature=0.7)
    m = batch["response_mask"].bool()
    sampled = torch.zeros_like(lp)
    for i, s in enumerate(flat):
        sampled[i, : len(s.response_ids)] = torch.tensor(s.logprobs)
    gap = (lp - sampled)[m].abs()
    print(f"\n[{type(actor).__name__}] LoRA sync: sampler vs peft over {int(m.sum())} tokens: mean |d| "
          f"{gap.mean():.2e}, max {gap.max():.2e}")
    assert gap.mean() <= 1e-3 and gap.max() <= 1e-2
    assert (base - sampled)[m].abs().mean() > 0.05  # the actor really sampled from the adapted model


def test_learner_trains_the_adapter_alone_zero0_vs_zero3(tiny_model_dir, tmp_path):
    """One LoRA update: optimizer state for A and B alone (2 Adam moments each); the merged weights
    come out under the base model's names; ZeRO-3 on 2 processes gives ZeRO-0's update."""
    from safetensors.torch import load_file

    z0 = run_learner(tiny_model_dir, tmp_path / "z0.pt", "drgrpo", 0, 4, lora_rank=4)
    z3 = run_learner(tiny_model_dir, tmp_path / "z3.pt", "drgrpo", 3, 2, nproc=2, lora_rank=4)
    trainable, total = z0["sizes"]
    assert trainable == 2 * (4 * (64 + 64) + 4 * (64 + 32) * 2 + 4 * (64 + 64) + 4 * (64 + 256) * 2 + 4 * (256 + 64))
    assert z0["opt_numel"] == 2 * trainable and z3["sizes"] == z0["sizes"]
    init = load_file(os.path.join(tiny_model_dir, "model.safetensors"))
    assert set(z0["state"]) == set(init) == set(z3["state"])
    assert z3["stats"]["train/grad_norm"] == pytest.approx(z0["stats"]["train/grad_norm"], rel=1e-4)
    assert max((z0["state"][k] - z3["state"][k]).abs().max().item() for k in init) < 1e-4
    moved = {k for k in init if (z0["state"][k] - init[k]).abs().max() > 1e-4}
    assert moved and all(k.endswith("proj.weight") for k in moved)  # adapted weights only: no bias, no embedding


def _logprobs_of(model, ids):
    with torch.no_grad():
        return torch.log_softmax(model(ids).logits, -1)


@pytest.mark.parametrize("nproc,zero", [(1, 0), (2, 3)])
def test_lora_resume_reproduces_uninterrupted_run(demo_base_model, tmp_path, nproc, zero):
    """As the full-parameter resume test: a crash after step 2's checkpoint, resumed, logs the
    uninterrupted run's step 3 and ends on its weights. The checkpoints hold the adapter (peft's
    format) and its optimizer state only; the final one also the merged HF model, which
    transformers loads and which scores as base + adapter under peft. ZeRO-3 runs with --beta > 0:
    the reference is the base model with the adapter off."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    a, b = tmp_path / "a", tmp_path / "b"
    flags = dict(max_steps=3, save_steps=2, eval_data="", actor="hf", zero_stage=zero, lora_rank=8,
                 learning_rate=5e-3, beta=0.05 if zero == 3 else 0.0)
    out = _train(_flags(demo_base_model, a, **flags), nproc=nproc)
    assert "trainable (" in out and "LoRA rank 8, alpha 32 on all-linear" in out
    ck2, ck3 = a / "checkpoints" / "step_00002", a / "checkpoints" / "step_00003"
    names = set(os.listdir(ck2))
    assert {"adapter", "deepspeed", "trainer_state.json"} <= names and "model" not in names  # no merged model mid-run
    assert {"adapter", "model"} <= set(os.listdir(ck3))  # the final save: the merged model too
    ds_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ck2 / "deepspeed") for f in fs)
    base_bytes = os.path.getsize(os.path.join(demo_base_model, "model.safetensors"))
    assert ds_bytes < base_bytes  # the adapter + its Adam moments, not the 4x-larger full state
    os.makedirs(b / "checkpoints")
    shutil.copytree(ck2, b / "checkpoints" / "step_00002")
    rows_a = schema.read_metrics(a)
    schema.append_jsonl(str(b / "metrics.jsonl"), [r for r in rows_a if r["step"] <= 2])
    shutil.copy(a / "config.json", b / "config.json")
    out = _train(_flags(demo_base_model, b, resume="auto", **flags), nproc=nproc)
    assert "at step 2" in out
    rows_b = schema.read_metrics(b)
    assert [r["step"] for r in rows_b] == [1, 2, 3]
    assert any(r["train/grad_norm"] > 0 for r in rows_a)  # (a step may earn no reward at all)
    for k, v in rows_a[-1].items():
        if not k.startswith(("time/", "mem/")):
            assert rows_b[-1][k] == pytest.approx(v, rel=1e-5, abs=1e-7) if isinstance(v, float) else rows_b[-1][k] == v, k
    wa = load_file(str(ck3 / "model" / "model.safetensors"))
    wb = load_file(str(b / "checkpoints" / "step_00003" / "model" / "model.safetensors"))
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-6
    # the merged model is a plain HF model, and it scores as the base model + the saved adapter
    merged = AutoModelForCausalLM.from_pretrained(str(ck3 / "model"), dtype=torch.float32).eval()
    peft_model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(demo_base_model, dtype=torch.float32), str(ck3 / "adapter")).eval()
    ids = torch.randint(3, 500, (2, 20), generator=torch.Generator().manual_seed(0))
    lp_merged, lp_peft = _logprobs_of(merged, ids), _logprobs_of(peft_model, ids)
    with peft_model.disable_adapter():
        lp_base = _logprobs_of(peft_model, ids)
    assert (lp_merged - lp_peft).abs().max() < 1e-4 < (lp_merged - lp_base).abs().max()


def test_short_demo_learns_with_lora(demo_base_model, tmp_path):
    """The demo with --lora_rank 16 (lr 5e-4, LoRA's usual ~10x), shortened as test_demo's."""
    out = tmp_path / "demo"
    _train(["--max_steps", "20", "--eval_steps", "0", "--eval_limit", "100", "--save_path", str(out),
            "--progress", "False", "--lora_rank", "16", "--learning_rate", "5e-4"])
    rows = schema.read_metrics(str(out))
    before, after = rows[0]["eval/average/accuracy"], rows[-1]["eval/average/accuracy"]
    assert after >= before + 0.30, (before, after)
