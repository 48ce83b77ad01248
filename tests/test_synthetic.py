"""The synthetic demo task and its base-model builder (tiny budgets; the real build is too slow here)."""

import logging
import random
import re

import pytest

from understand_r1_zero import synthetic as syn


def _boxed(text):
    found = re.findall(r"\\boxed\{([^{}]*)\}", text)
    return found[-1] if found else None


def _pairs(n=500, seed=0):
    rng = random.Random(seed)
    return [(rng.randint(10, 999), rng.randint(10, 999)) for _ in range(n)]


def test_task_is_seeded_and_deterministic():
    assert syn.make_task(50, 20, seed=3) == syn.make_task(50, 20, seed=3)
    assert syn.make_task(50, 20, seed=3) != syn.make_task(50, 20, seed=4)
    train, evals = syn.make_task(50, 20, seed=3)
    assert len(train) == 50 and len(evals) == 20
    for row in train + evals:
        assert set(row) == {"problem", "answer"}
        a, b = syn.parse_problem(row["problem"])
        assert row["answer"] == str(a + b)


def test_train_and_eval_are_disjoint_across_seeds():
    train, evals = syn.make_task(2000, 200, seed=0)
    tr = {syn.parse_problem(r["problem"]) for r in train}
    ev = {syn.parse_problem(r["problem"]) for r in evals}
    assert len(tr) == 2000 and len(ev) == 200  # unique within each split
    assert not tr & ev
    # The split is a fixed hash of the problem, so another seed's train set cannot hold these evals.
    tr_other = {syn.parse_problem(r["problem"]) for r in syn.make_task(2000, 10, seed=7)[0]}
    assert not tr_other & ev
    assert all(syn.is_held_out(a, b) for a, b in ev)


def test_synthetic_datasets_schema():
    train, evals = syn.synthetic_datasets(seed=0, n_train=30, n_eval=10)
    assert train.column_names == ["problem", "answer"] and len(train) == 30 and len(evals) == 10
    assert syn.DEMO.n_eval > 0 and syn.DEMO.n_train > syn.DEMO.n_eval


def test_correct_solutions_are_correct():
    for a, b in _pairs():
        text = syn.solution(a, b)
        assert _boxed(text) == str(a + b), text
        assert syn.column_answer(a, b) == a + b
    assert syn.solution(47, 385) == "7+5=12\n4+8+1=13\n0+3+1=4\n\\boxed{432}"


def test_slip_is_wrong_exactly_when_an_inner_column_carries():
    assert syn.solution(47, 385, carry=False) == "7+5=12\n4+8=12\n0+3=3\n\\boxed{322}"
    n_wrong = 0
    for a, b in _pairs():
        inner_carry = any(s >= 10 for *_, s in syn.columns(a, b)[:-1])
        slip = int(_boxed(syn.solution(a, b, carry=False)))
        assert (slip != a + b) == inner_carry, (a, b)
        n_wrong += slip != a + b
    assert 0.5 < n_wrong / 500 < 0.85  # most problems have an inner carry: RL has work to do


def test_rechecks_and_noise_do_not_change_the_answer():
    for a, b in _pairs(100):
        for carry in (True, False):
            base = _boxed(syn.solution(a, b, carry=carry))
            for k in range(4):
                text = syn.solution(a, b, carry=carry, rechecks=k, verbose=k == 2)
                assert _boxed(text) == base
                assert text.count("Check:") == k
                assert all(line.endswith(f"={base}. Yes.") for line in text.split("\n")
                           if line.startswith("Check:"))
        assert _boxed(syn.solution(a, b, boxed=False)) is None
        assert syn.solution(a, b, boxed=False).endswith(f"The answer is {a + b}.")


def test_mix_knobs():
    rng = random.Random(0)
    never = syn.Mix(slip_prob=0, unboxed_prob=0, verbose_prob=0, recheck_prob=0)
    for a, b in _pairs(200):
        assert syn.sample_solution(a, b, rng, never) == syn.solution(a, b)
    often = syn.Mix(recheck_prob=0.5)
    n_checks = [syn.sample_solution(47, 385, rng, often).count("Check:") for _ in range(2000)]
    assert 0.8 < sum(n_checks) / len(n_checks) < 1.2  # geometric: p / (1 - p) = 1
    slips = [_boxed(syn.sample_solution(47, 385, rng, syn.Mix(unboxed_prob=0))) == "322"
             for _ in range(2000)]
    assert abs(sum(slips) / 2000 - syn.Mix().slip_prob) < 0.05


TINY = dict(hidden_size=64, num_layers=1, num_heads=2, num_kv_heads=1, steps=3, batch_size=4,
            warmup_steps=1)


def test_build_base_model_writes_a_loadable_dir_and_reuses_the_cache(tmp_path, caplog, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from understand_r1_zero.templates import get_template

    caplog.set_level(logging.INFO, logger=syn.__name__)
    threads = torch.get_num_threads()
    path = syn.build_base_model(cache_dir=str(tmp_path), seed=0, threads=1, **TINY)
    assert "built the synthetic base model" in caplog.text
    assert torch.get_num_threads() == threads  # the caller's setting is restored
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    c = model.config  # TINY: hidden 64 / 2 heads = head dim 32, whether or not the config spells it out
    assert (getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads) == 32
    ids = tok(get_template("qwen_math").format("What is 47 + 385?"), return_tensors="pt",
              add_special_tokens=False).input_ids
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids.shape[1]
    assert tok.convert_tokens_to_ids("<|im_end|>") in model.generation_config.eos_token_id
    assert len(tok("2024", add_special_tokens=False).input_ids) == 4  # digits one per token

    caplog.clear()

    def no_retrain(*a, **k):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(syn, "pretrain", no_retrain)
    assert syn.build_base_model(cache_dir=str(tmp_path), seed=0, threads=1, **TINY) == path
    assert "loaded the cached synthetic base model" in caplog.text
    # A different config is a different cache entry.
    with pytest.raises(AssertionError, match="cache should have been used"):
        syn.build_base_model(cache_dir=str(tmp_path), seed=1, threads=1, **TINY)


def test_cache_key_tracks_the_config():
    base = syn.BaseModelConfig()
    assert base.key() == syn.BaseModelConfig().key()
    assert base.key() != syn.BaseModelConfig(mix=syn.Mix(recheck_prob=0.3)).key()
    assert base.key() != syn.BaseModelConfig(steps=base.steps + 1).key()


def test_shared_prefix_loss_equals_plain_loss(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    pairs = syn.corpus_examples(syn.BaseModelConfig(), random.Random(0), 6)
    ids, mask, labels, shared = syn._batch(tok, pairs)
    n_prompt = len(tok(pairs[0][0], add_special_tokens=False).input_ids)
    assert 10 < shared < n_prompt  # the system prompt, not the question
    losses, grads = [], []
    for k in (0, shared):
        model.zero_grad()
        loss = syn.lm_loss(model, ids, mask, labels, k)
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert abs(losses[0] - losses[1]) < 1e-5
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
