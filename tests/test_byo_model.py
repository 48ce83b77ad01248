"""Bring your own model: tokenizers and models built independently of ``tiny.py``
(``tests/byo_models.py``) work on both actors, and a tokenizer that disagrees with its model in
a way that matters fails at start-up in one line.

Covered: stop strings that are many tokens (char-level ``</answer>``, and WordPiece, where
transformers' own ``StopStringCriteria`` raises); no pad token, no BOS; a tokenizer larger
(``<|endoftext|>`` appended past the embedding) and smaller (embedding padded) than the model;
tied and untied embeddings; a ``generation_config.json`` with a list of EOS ids.
vLLM engines are process-global, so the vLLM checks run in a subprocess per model.
"""

import json
import os
import subprocess
import sys

import pytest

from understand_r1_zero.actor import check_tokenizer, make_actor

sys.path.insert(0, os.path.dirname(__file__))
import byo_models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDERS = {"char_qwen2": byo_models.char_qwen2, "wordpiece_llama": byo_models.wordpiece_llama}


@pytest.fixture(scope="module", params=list(BUILDERS))
def byo(request, tmp_path_factory):
    return request.param, BUILDERS[request.param](str(tmp_path_factory.mktemp(request.param)))


def _expected_ids(name, path):
    from transformers import AutoConfig, AutoTokenizer

    tok, vocab = AutoTokenizer.from_pretrained(path), AutoConfig.from_pretrained(path).vocab_size
    if name == "char_qwen2":
        # transformers appended <|endoftext|> one past the embedding: it must not be a stop id
        assert len(tok) == vocab + 1 and tok.convert_tokens_to_ids("<|endoftext|>") == vocab
        return vocab, [tok.convert_tokens_to_ids("</s>")], tok.pad_token_id
    meta = json.load(open(os.path.join(path, "byo.json")))
    assert len(tok) < vocab and tok.pad_token_id is None and tok.bos_token_id is None
    return vocab, meta["eos"], meta["eos"][0]  # no pad token: the first EOS pads


def test_stop_ids_are_tokens_the_model_can_emit(byo):
    name, path = byo
    from transformers import AutoTokenizer

    assert check_tokenizer(AutoTokenizer.from_pretrained(path), path) == _expected_ids(name, path)


SCRIPT = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM
from understand_r1_zero.actor import make_actor
from understand_r1_zero.rollout import collate_grouped, response_logprobs
from understand_r1_zero.templates import get_template
backend, path = sys.argv[1:3]
actor = make_actor(backend, path, seed=0)
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
out = {"vocab": actor.vocab_size, "eos": actor.eos_token_ids, "pad": actor.pad_id, "runs": []}
for tname in ("r1", "qwen_math", "no"):
    tpl = get_template(tname)
    groups = actor.generate([tpl.format("What is 1 + 2?"), tpl.format("Find x.")], n=3, temperature=1.0,
                            max_tokens=24, stop=list(tpl.stop), include_stop=tpl.include_stop, seed=5)
    flat = [s for g in groups for s in g]
    b = collate_grouped(flat, actor.pad_id)
    with torch.no_grad():
        lp = response_logprobs(model, b, temperature=1.0)
    diff = max((lp[j, :len(s.response_ids)] - torch.tensor(s.logprobs)).abs().max().item() for j, s in enumerate(flat))
    out["runs"].append({"template": tname, "diff": diff, "max_id": max(i for s in flat for i in s.response_ids),
                        "reasons": sorted({s.finish_reason for s in flat}),
                        "lens": [len(s.response_ids) for s in flat], "lps": [len(s.logprobs) for s in flat]})
# weight sync of every parameter (tied or untied lm_head) under the model's own names
out["synced"] = actor.load_weights((n, p.detach()) for n, p in model.named_parameters())
out["n_params"] = len(list(model.named_parameters()))
actor.close()
print("RESULT " + json.dumps(out))
"""


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_actor_generates_and_agrees_with_learner(byo, backend):
    """Both actors generate under every template, stop within the embedding, and their
    logprobs equal the learner's scoring path (collate_grouped + response_logprobs) in fp32."""
    name, path = byo
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-c", SCRIPT, backend, path], capture_output=True, text=True,
                       env=env, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = json.loads(next(x for x in r.stdout.splitlines() if x.startswith("RESULT "))[7:])
    vocab, eos, pad = _expected_ids(name, path)
    assert (out["vocab"], out["eos"], out["pad"]) == (vocab, eos, pad)
    assert out["synced"] == out["n_params"]
    for run in out["runs"]:
        assert run["diff"] < 1e-4, run
        assert run["max_id"] < vocab and run["lens"] == run["lps"] and all(n >= 1 for n in run["lens"])
        assert set(run["reasons"]) <= {"stop", "length"}


def test_text_stop_for_tokenizers_transformers_cannot_handle(tmp_path):
    """WordPiece: transformers' StopStringCriteria raises, so the hf actor stops on decoded text.
    Relabel an embedding row so the model greedily emits the token that completes `</answer>`'s
    pieces: here, make a multi-piece stop string from the model's own greedy output."""
    path = byo_models.wordpiece_llama(str(tmp_path / "w"))
    with make_actor("hf", path, seed=0) as actor:
        ids = actor.encode("What is 1 + 2 ?")
        (full,) = actor.generate([ids], temperature=0, max_tokens=12)[0]
        text = full.text
        words = text.split()
        assert len(words) >= 3, text
        stop = " ".join(words[1:3])  # spans several tokens
        (s,) = actor.generate([ids], temperature=0, max_tokens=12, stop=[stop], include_stop=False)[0]
        assert s.finish_reason == "stop" and stop not in s.text and text.startswith(s.text.strip()[:5])
        assert len(s.response_ids) < len(full.response_ids)


def _write_mismatched(src, dst, *, drop_eos_rows: bool):
    """The char model with its embedding cut below the tokenizer's EOS (drop_eos_rows) or below
    an ordinary character that prompts use."""
    import shutil

    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig

    shutil.copytree(src, dst)
    cfg = AutoConfig.from_pretrained(dst)
    rows = 2 if drop_eos_rows else cfg.vocab_size - 10  # </s> is id 2; the last chars are ids >= V-10
    sd = load_file(os.path.join(dst, "model.safetensors"))
    sd = {k: (v[:rows].clone() if v.shape[0] == cfg.vocab_size else v) for k, v in sd.items()}
    save_file(sd, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    c = json.load(open(os.path.join(dst, "config.json")))
    c["vocab_size"] = rows
    json.dump(c, open(os.path.join(dst, "config.json"), "w"))
    return dst


def test_mismatch_that_matters_is_one_line(tmp_path):
    from transformers import AutoTokenizer

    src = byo_models.char_qwen2(str(tmp_path / "c"))
    no_eos = _write_mismatched(src, str(tmp_path / "no_eos"), drop_eos_rows=True)
    with pytest.raises(ValueError, match="past the model's 2-row embedding, so generation could never stop"):
        check_tokenizer(AutoTokenizer.from_pretrained(no_eos), no_eos)
    short = _write_mismatched(src, str(tmp_path / "short"), drop_eos_rows=False)
    with make_actor("hf", short, seed=0) as actor:
        with pytest.raises(ValueError, match="does not match its model"):
            actor.encode("What is 1 + 2? " + byo_models.CHARS)
    # through the CLI: exit 2, one line, before any model loads
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train_zero_math.py"), "--pretrain", no_eos,
                        "--eval_data", "", "--max_steps", "1", "--save_path", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={**os.environ, "DS_ACCELERATOR": "cpu"})
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith("error: every EOS token")
    assert "Traceback" not in r.stderr


def test_train_runs_on_a_byo_model_with_the_vllm_actor(tmp_path):
    """The issue-14 repro: `--prompt_template no --actor vllm` on the char-level Qwen2 crashed with
    'token_id(s) [V] in stop_token_ids contain out-of-vocab token ids'."""
    path = byo_models.char_qwen2(str(tmp_path / "c"))
    flags = dict(pretrain=path, prompt_template="no", actor="vllm", max_steps=1, eval_data="synthetic",
                 eval_limit=4, rollout_batch_size=2, num_samples=2, micro_batch_size=4,
                 generate_max_length=16, eval_max_length=16, save_path=str(tmp_path / "run"),
                 progress=False, grade_workers=0)
    cmd = [sys.executable, os.path.join(ROOT, "train_zero_math.py")] + \
        [x for k, v in flags.items() for x in (f"--{k}", str(v))]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT,
                       env={**os.environ, "DS_ACCELERATOR": "cpu", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = [json.loads(x) for x in open(tmp_path / "run" / "metrics.jsonl")]
    assert [row["step"] for row in rows] == [0, 1]
