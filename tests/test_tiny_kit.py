import json
import os
import subprocess
import sys

import torch

from understand_r1_zero.tiny import SPECIAL_TOKENS, TAG_TOKENS


def test_kit_roundtrip_transformers(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for t in SPECIAL_TOKENS + TAG_TOKENS:  # each is a single token
        assert len(tok(t, add_special_tokens=False).input_ids) == 1, t
    text = "<think> 12 + 30 = 42 </think> <answer> \\boxed{42} </answer>"
    ids = tok(text, add_special_tokens=False).input_ids
    assert tok.decode(ids) == text  # byte-level: exact round trip
    assert tok.decode(tok("2024").input_ids) == "2024" and len(tok("2024").input_ids) == 4
    # The r1 tags must survive skip_special_tokens (the stop string is matched on text).
    assert "</answer>" in tok.decode(ids, skip_special_tokens=True)
    out = model.generate(torch.tensor([ids]), max_new_tokens=5, do_sample=False,
                         pad_token_id=tok.pad_token_id)
    assert out.shape[1] > len(ids)
    # head dim 32 (hidden 64 / 2 heads), whether or not the config spells head_dim out: the
    # smallest head size vLLM's CPU attention runs
    c = model.config
    assert (getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads) == 32
    assert c.hidden_size % c.num_attention_heads == 0


def test_kit_cli(tmp_path):
    out = tmp_path / "m"
    r = subprocess.run([sys.executable, "-m", "understand_r1_zero.tiny", str(out),
                        "--hidden_size", "64", "--num_layers", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = json.load(open(out / "config.json"))
    assert cfg["num_hidden_layers"] == 1 and cfg["model_type"] == "qwen2"
    assert os.path.exists(out / "tokenizer.json")
