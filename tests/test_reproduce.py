"""The miniature (synthetic.MINIATURE) and analysis/reproduce.py on hand-made inputs, with
hand-computed numbers: no model is built, loaded or trained here."""

import dataclasses
import hashlib
import json
import math
import os
import random
import re
import sys

import pytest
import scipy.stats  # noqa: F401  (reproduce._t95 imports it lazily: pay it at collection, not in a test)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # `analysis` is a folder of scripts, not part of the installed package

from analysis import length_bias, reproduce  # noqa: E402
from understand_r1_zero import schema, synthetic  # noqa: E402
from understand_r1_zero.templates import get_template  # noqa: E402


# ============================================================================ synthetic: the miniature
MINI = synthetic.BaseModelConfig(**synthetic.MINIATURE)
MARKER = MINI.mix.hasty_marker
QUIET = dict(recheck_prob=0.0, unboxed_prob=0.0, verbose_prob=0.0)
"""A Mix with no noise: only the slip decides the text."""


def _geometric_mean(p, cap):
    """Mean re-check lines: P(rechecks >= k) = p ** k for k = 1 .. cap."""
    return sum(p ** k for k in range(1, cap + 1))


def test_hasty_marker_solution_text():
    # 164 + 247 with every carry dropped: ones 4+7=11 -> 1, tens 6+4=10 -> 0, hundreds 1+2=3 -> 301
    # (the true sum is 411); the hasty writer skips the columns: the marker and the sum on one line
    assert synthetic.column_answer(164, 247, carry=False) == 301
    slip = synthetic.Mix(slip_prob=1.0, hasty_marker="Quick sum:", **QUIET)
    assert synthetic.sample_solution(164, 247, random.Random(0), slip) == "Quick sum: 164+247=301\n\\boxed{301}"
    # every imperfection at once: re-checks and the unboxed ending stay, the verbose sentence does not
    noisy = synthetic.Mix(slip_prob=1.0, recheck_prob=1.0, max_rechecks=1, unboxed_prob=1.0,
                          verbose_prob=1.0, hasty_marker="Quick sum:")
    assert synthetic.sample_solution(164, 247, random.Random(0), noisy) == (
        "Quick sum: 164+247=301\nCheck: 164+247=301. Yes.\nThe answer is 301.")
    assert synthetic.hasty_solution(164, 247, "Quick sum:", boxed=False, rechecks=1) == (
        "Quick sum: 164+247=301\nCheck: 164+247=301. Yes.\nThe answer is 301.")
    assert synthetic.hasty_solution(164, 247, "Hm:", rechecks=2) == (
        "Hm: 164+247=301\nCheck: 164+247=301. Yes.\nCheck: 164+247=301. Yes.\n\\boxed{301}")
    # the careful writer never carries the marker: the columns with their carries
    careful = synthetic.Mix(slip_prob=0.0, hasty_marker="Quick sum:", **QUIET)
    assert synthetic.sample_solution(164, 247, random.Random(0), careful) == (
        "4+7=11\n6+4+1=11\n1+2+1=4\n\\boxed{411}")
    noisy_careful = dataclasses.replace(noisy, slip_prob=0.0)
    assert synthetic.sample_solution(164, 247, random.Random(0), noisy_careful) == (
        "Add the digits column by column, starting from the ones.\n4+7=11\n6+4+1=11\n1+2+1=4\n"
        "Check: 164+247=411. Yes.\nThe answer is 411.")
    # a slip on a problem with no carry is hasty too (the marker tells the path, not the result)
    assert synthetic.sample_solution(12, 34, random.Random(0), slip) == "Quick sum: 12+34=46\n\\boxed{46}"
    # the miniature's own marker: one line, no digits, not a re-check
    assert MARKER and "\n" not in MARKER and not re.search(r"\d", MARKER) and "Check:" not in MARKER


def test_hasty_marker_only_on_slips():
    mix = dataclasses.replace(MINI.mix, slip_prob=0.5)
    rng, marked = random.Random(7), 0
    pairs = [(164, 247), (47, 385), (786, 921), (999, 1)]  # every one has an inner carry
    for _ in range(100):
        for a, b in pairs:
            text = synthetic.sample_solution(a, b, rng, mix)
            ans = int(re.search(r"(\d+)\D*$", text).group(1))
            if text.startswith(MARKER + " "):
                marked += 1
                slip = synthetic.column_answer(a, b, carry=False)
                assert slip == ans != a + b
                lines = text.split("\n")
                assert lines[0] == f"{MARKER} {a}+{b}={slip}" and text.count(MARKER) == 1
                assert all(ln.startswith("Check: ") for ln in lines[1:-1])  # no column lines
            else:
                assert MARKER not in text and ans == a + b
    assert 0.4 < marked / 400 < 0.6


def test_r1_ending_text():
    boxed = synthetic.solution(47, 385)  # "7+5=12\n4+8+1=13\n0+3+1=4\n\\boxed{432}"
    assert synthetic.r1_ending(boxed) == "7+5=12\n4+8+1=13\n0+3+1=4 </think> <answer> 432 </answer>"
    unboxed = synthetic.solution(786, 921, carry=False, boxed=False, rechecks=1)
    assert synthetic.r1_ending(unboxed) == (
        "6+1=7\n8+2=10\n7+9=16\nCheck: 786+921=1607. Yes. </think> <answer> 1607 </answer>")
    verbose = synthetic.solution(47, 385, carry=False, boxed=False, verbose=True)
    assert synthetic.r1_ending(verbose) == ("Add the digits column by column, starting from the ones.\n"
                                            "7+5=12\n4+8=12\n0+3=3 </think> <answer> 322 </answer>")
    marked = synthetic.sample_solution(164, 247, random.Random(0),
                                       synthetic.Mix(slip_prob=1.0, hasty_marker="Quick sum:", **QUIET))
    assert synthetic.r1_ending(marked) == "Quick sum: 164+247=301 </think> <answer> 301 </answer>"
    assert synthetic.r1_ending(synthetic.hasty_solution(164, 247, boxed=False, rechecks=1)) == (
        "Quick sum: 164+247=301\nCheck: 164+247=301. Yes. </think> <answer> 301 </answer>")


def test_demo_cache_key_is_unchanged_and_the_miniature_has_its_own():
    demo = synthetic.BaseModelConfig(seed=1)
    assert demo.key() == "cbe4a7aee90b"  # the key before any of the miniature's fields existed
    assert synthetic.BaseModelConfig(seed=0).key() == "4fe128fa280c"
    assert synthetic.BaseModelConfig(template="r1").key() == "86797edf14f4"
    mini = synthetic.BaseModelConfig(seed=1, **synthetic.MINIATURE)
    assert mini.key() != demo.key()
    assert mini.key() == synthetic.BaseModelConfig(seed=1, **synthetic.MINIATURE).key()  # deterministic
    # each new field, off its default, enters the key on its own (and each differently)
    off = {
        "r1_tag_prob": synthetic.BaseModelConfig(seed=1, r1_tag_prob=0.25),
        "template_mix": synthetic.BaseModelConfig(seed=1, template_mix=(("no", 1.0, 0.6),)),
        "uniform_digits": synthetic.BaseModelConfig(seed=1, uniform_digits=True),
        "parent": synthetic.BaseModelConfig(seed=1, parent=(("seed", 0),)),
        "max_rechecks": synthetic.BaseModelConfig(seed=1, mix=synthetic.Mix(max_rechecks=3)),
        "hasty_marker": synthetic.BaseModelConfig(seed=1, mix=synthetic.Mix(hasty_marker="Quick sum:")),
    }
    keys = {name: cfg.key() for name, cfg in off.items()}
    assert demo.key() not in keys.values() and len(set(keys.values())) == len(keys), keys
    # the defaults written out explicitly are the demo's key
    assert synthetic.BaseModelConfig(seed=1, template_mix=(), r1_tag_prob=1.0, uniform_digits=False,
                                     parent=(), mix=synthetic.Mix(max_rechecks=8, hasty_marker="")
                                     ).key() == demo.key()


def test_miniature_config():
    names = [n for n, _, _ in MINI.template_mix]
    assert names == ["no", "qwen_math", "r1"]
    for name in names:
        assert get_template(name).name == name
        get_template(name, for_training=True)  # each is usable for RL too
    assert sum(s for _, s, _ in MINI.template_mix) == pytest.approx(1.0)
    assert all(0 < s <= 1 and 0 <= p <= 1 for _, s, p in MINI.template_mix)
    assert 0 <= MINI.r1_tag_prob <= 1 and 0 < MINI.mix.recheck_prob < 1 and MINI.mix.max_rechecks >= 1
    assert MINI.uniform_digits and (MINI.min_digits, MINI.max_digits) == (2, 3)
    # the parent is the demo's base: its (field, value) pairs give the demo's config and cache key
    assert MINI.parent == (("seed", synthetic.DEMO_BASE_SEED),)
    assert synthetic.BaseModelConfig(**dict(MINI.parent)) == synthetic.BaseModelConfig(seed=synthetic.DEMO_BASE_SEED)
    assert synthetic.BaseModelConfig(**dict(MINI.parent)).key() == "cbe4a7aee90b"
    assert set(synthetic.MINIATURE) <= {f.name for f in dataclasses.fields(synthetic.BaseModelConfig)}


def _replay(a, b, rng, mix):
    """sample_solution written out: the draws in the order rechecks-loop, carry, boxed, verbose."""
    rechecks = 0
    while rng.random() < mix.recheck_prob and rechecks < mix.max_rechecks:
        rechecks += 1
    carry = rng.random() >= mix.slip_prob
    boxed = rng.random() >= mix.unboxed_prob
    verbose = rng.random() < mix.verbose_prob
    if mix.hasty_marker and not carry:
        return synthetic.hasty_solution(a, b, mix.hasty_marker, boxed=boxed, rechecks=rechecks)
    return synthetic.solution(a, b, carry=carry, boxed=boxed, rechecks=rechecks, verbose=verbose)


PAIRS = [(47, 385), (786, 921), (12, 34), (999, 1), (505, 495), (164, 247)] * 8


def test_sample_solution_draws_the_demo_stream():
    # pinned from the code before the miniature's fields existed: Random(0) gives careful, slip, slip
    rng = random.Random(0)
    assert [synthetic.sample_solution(47, 385, rng) for _ in range(3)] == [
        "7+5=12\n4+8+1=13\n0+3+1=4\n\\boxed{432}", "7+5=12\n4+8=12\n0+3=3\n\\boxed{322}",
        "7+5=12\n4+8=12\n0+3=3\n\\boxed{322}"]
    assert synthetic.Mix() == synthetic.Mix(max_rechecks=8, hasty_marker="")  # the old hard-coded cap
    for mix in (synthetic.Mix(), synthetic.Mix(recheck_prob=0.5), synthetic.Mix(recheck_prob=0.9),
                synthetic.Mix(recheck_prob=0.9, max_rechecks=0), synthetic.Mix(recheck_prob=0.7, max_rechecks=2),
                synthetic.Mix(hasty_marker="Quick sum:"), MINI.mix):
        got_rng, want_rng = random.Random(0), random.Random(0)
        for a, b in PAIRS:
            got = synthetic.sample_solution(a, b, got_rng, mix)
            assert got == _replay(a, b, want_rng, mix), (mix, a, b)
            assert got.count("Check:") <= mix.max_rechecks
        assert got_rng.random() == want_rng.random()  # the same number of draws


def test_marker_and_cap_leave_the_stream_in_step():
    # the marker changes the text of a slip, never the draws: both streams stay in step
    r_off, r_on = random.Random(3), random.Random(3)
    n_marked = 0
    for a, b in PAIRS:
        off = synthetic.sample_solution(a, b, r_off, synthetic.Mix())
        on = synthetic.sample_solution(a, b, r_on, synthetic.Mix(hasty_marker="Quick sum:"))
        if on.startswith("Quick sum: "):
            n_marked += 1  # the same slip, re-checks and ending, written the hasty way
            assert on == synthetic.hasty_solution(a, b, "Quick sum:", boxed=off.endswith("}"),
                                                  rechecks=off.count("Check:"))
            assert on.split("\n")[-1] == off.split("\n")[-1]
        else:
            assert on == off
    assert r_off.random() == r_on.random() and 0 < n_marked < len(PAIRS)
    # a cap the re-check loop never reaches changes nothing (recheck_prob 0.15: 3 in a row is rare)
    r8, r3 = random.Random(4), random.Random(4)
    for a, b in PAIRS:
        t8 = synthetic.sample_solution(a, b, r8, synthetic.Mix())
        t3 = synthetic.sample_solution(a, b, r3, synthetic.Mix(max_rechecks=3))
        if t8.count("Check:") >= 3:
            break  # the cap bound: the streams may part from here on
        assert t8 == t3
    else:
        assert r8.random() == r3.random()


def test_demo_corpus_is_unchanged():
    # sha256 prefixes computed with the code before the miniature (HEAD's synthetic.py)
    pairs = synthetic.corpus_examples(synthetic.BaseModelConfig(), random.Random(0), 200)
    assert hashlib.sha256(repr(pairs).encode()).hexdigest()[:16] == "3c2746e0087a1863"
    r = random.Random(5)
    out = [synthetic.sample_solution(*synthetic._operands(r, 2, 3), r) for _ in range(300)]
    assert hashlib.sha256(repr(out).encode()).hexdigest()[:16] == "d42a8c5df57a836a"


def _template_of(prompt):
    if prompt.startswith("<|im_start|>system"):
        return "qwen_math"
    if prompt.startswith("A conversation between User and Assistant."):
        return "r1"
    return "no"


R1_CLOSE = re.compile(r"(?s).* </think> <answer> \d+ </answer><\|im_end\|>")
OTHER_END = re.compile(r"(?s).*(\\boxed\{\d+\}|The answer is \d+\.)<\|im_end\|>")


def _near(got, p, n, z=5.0):
    """got within z binomial standard errors of p (n draws), plus a little slack."""
    return abs(got - p) <= z * math.sqrt(p * (1 - p) / n) + 0.01


def test_corpus_template_mix_shares_and_slips():
    rng = random.Random(123)
    tmix = {t: (share, slip) for t, share, slip in synthetic.MINIATURE["template_mix"]}
    tag_prob = synthetic.MINIATURE["r1_tag_prob"]
    mix = synthetic.MINIATURE["mix"]
    calls = {t: 0 for t in tmix}
    probs = {t: [0, 0] for t in tmix}  # [marked (slipped), responses]
    r1 = [0, 0]  # [closed in the r1 format, r1 responses]
    checks, n_all = 0, 0
    n_calls = 1000
    for _ in range(n_calls):
        batch = synthetic.corpus_examples(MINI, rng, 4)
        assert len(batch) == 4
        names = {_template_of(p) for p, _ in batch}
        assert len(names) == 1, names  # one template per call
        name = names.pop()
        calls[name] += 1
        for prompt, resp in batch:
            a, b = synthetic.parse_problem(prompt)
            q = next(ph.format(a=a, b=b) for ph in synthetic.PHRASINGS if ph.format(a=a, b=b) in prompt)
            assert prompt == get_template(name).format(q)
            assert not synthetic.is_held_out(a, b)
            assert resp.endswith("<|im_end|>")
            marked = resp.startswith(mix.hasty_marker + " ")
            if marked:  # the hasty writer: the marker and the carry-less sum on the first line
                assert resp.split("\n")[0].split(" </think>")[0] == (
                    f"{mix.hasty_marker} {a}+{b}={synthetic.column_answer(a, b, carry=False)}"), resp
            ans = int(re.search(r"(\d+)\D*<\|im_end\|>$", resp).group(1))
            # a marked solution is the slip's, an unmarked one the careful solver's
            assert ans == (synthetic.column_answer(a, b, carry=False) if marked else a + b), resp
            assert resp.count(mix.hasty_marker) == int(marked)
            probs[name][0] += marked
            probs[name][1] += 1
            n_checks = resp.count("Check:")
            assert n_checks <= mix.max_rechecks
            checks += n_checks
            n_all += 1
            if name == "r1":
                r1[1] += 1
                if R1_CLOSE.fullmatch(resp):
                    r1[0] += 1
                    assert resp.count("</think>") == 1 and "\\boxed" not in resp and "The answer is" not in resp
                else:
                    assert OTHER_END.fullmatch(resp), resp
                    assert "</think>" not in resp
            else:
                assert OTHER_END.fullmatch(resp) and "</think>" not in resp, resp
    for t, (share, slip) in tmix.items():
        assert _near(calls[t] / n_calls, share, n_calls), (t, calls)
        # each template's own slip probability, not the Mix's
        assert _near(probs[t][0] / probs[t][1], slip, probs[t][1]), (t, probs)
    assert _near(r1[0] / r1[1], tag_prob, r1[1]), r1
    # re-checks: geometric with p = recheck_prob, capped at max_rechecks
    assert checks / n_all == pytest.approx(_geometric_mean(mix.recheck_prob, mix.max_rechecks), abs=0.06)


def _digits(pairs):
    return [(len(str(a)), len(str(b))) for a, b in (synthetic.parse_problem(p) for p, _ in pairs)]


def test_uniform_digits():
    n = 4000
    for cfg in (MINI, synthetic.BaseModelConfig(uniform_digits=True)):
        d = _digits(synthetic.corpus_examples(cfg, random.Random(11), n))
        ops = [x for ab in d for x in ab]
        assert set(ops) == {2, 3}
        assert _near(ops.count(2) / len(ops), 0.5, len(ops))
        # a's and b's digit counts are drawn independently: all four combinations, ~1/4 each
        combos = {c: d.count(c) / n for c in [(2, 2), (2, 3), (3, 2), (3, 3)]}
        assert set(d) == set(combos)
        assert all(_near(v, 0.25, n) for v in combos.values()), combos
    # each operand uniform within its digit count too: the 3-digit ones span 100..999
    ops3 = [x for p, _ in synthetic.corpus_examples(MINI, random.Random(12), 2000)
            for x in synthetic.parse_problem(p) if x >= 100]
    assert min(ops3) < 150 and max(ops3) > 950
    # three digit counts: a third each
    cfg = synthetic.BaseModelConfig(uniform_digits=True, min_digits=1, max_digits=3)
    ops = [x for ab in _digits(synthetic.corpus_examples(cfg, random.Random(13), 3000)) for x in ab]
    assert all(_near(ops.count(k) / len(ops), 1 / 3, len(ops)) for k in (1, 2, 3))
    # without it (the demo): uniform over the numbers, so 2-digit operands are 90 / 990 of them
    ops = [x for ab in _digits(synthetic.corpus_examples(synthetic.BaseModelConfig(), random.Random(11), n))
           for x in ab]
    assert _near(ops.count(2) / len(ops), 90 / 990, len(ops))


def test_corpus_without_a_mix_uses_the_one_template():
    cfg = synthetic.BaseModelConfig(template="no", mix=synthetic.Mix(slip_prob=1.0, hasty_marker="Quick sum:"))
    batch = synthetic.corpus_examples(cfg, random.Random(0), 20)
    for prompt, resp in batch:
        a, b = synthetic.parse_problem(prompt)
        assert _template_of(prompt) == "no"
        slip = synthetic.column_answer(a, b, carry=False)
        assert resp.split("\n")[0] == f"Quick sum: {a}+{b}={slip}"
        assert resp.endswith((f"\\boxed{{{slip}}}<|im_end|>", f"The answer is {slip}.<|im_end|>"))
    cfg = synthetic.BaseModelConfig(template_mix=(("r1", 1.0, 0.0),), r1_tag_prob=1.0)
    for prompt, resp in synthetic.corpus_examples(cfg, random.Random(0), 20):
        a, b = synthetic.parse_problem(prompt)
        assert _template_of(prompt) == "r1" and resp.endswith(f" </think> <answer> {a + b} </answer><|im_end|>")


def test_r1_template_without_a_mix_keeps_its_old_corpus():
    # without a template_mix the r1 rewrite never happens: template="r1" alone writes the habitual
    # \\boxed{} ending it wrote before the change, under its old cache key
    cfg = synthetic.BaseModelConfig(template="r1")
    assert cfg.key() == "86797edf14f4"
    _, resp = synthetic.corpus_examples(cfg, random.Random(0), 1)[0]
    assert resp == "4+4=8\n7+0=7\n8+4=12\nCheck: 874+404=1278. Yes.\n\\boxed{1278}<|im_end|>"
    # ... whatever r1_tag_prob says (it only acts inside a template_mix)
    for p in (1.0, 0.5):
        pairs = synthetic.corpus_examples(synthetic.BaseModelConfig(template="r1", r1_tag_prob=p), random.Random(1), 50)
        assert all("</think>" not in r for _, r in pairs)
        assert pairs == synthetic.corpus_examples(cfg, random.Random(1), 50)


# ============================================================================ reproduce: hand-made runs
def _write_jsonl(path, rows):
    """schema's row format without append_jsonl's fsync (dozens of files: keep the tests fast)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(schema.dumps(r) + "\n" for r in rows)


@pytest.fixture(autouse=True, scope="module")
def _no_length_plots():
    """length_by_outcome draws a 4-panel figure per call, which reproduce discards: skip the
    drawing (seconds on a busy 2-core box), the numbers are the same."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(length_bias, "plot_lengths", lambda df, smooth=1: None)
        yield


def _metrics_row(step, **kw):
    row = {k: 0.0 for k in schema.METRICS_REQUIRED}
    row.update(step=step, **kw)
    return row


GAPS = {0: 4.0, 1: 6.0, 2: 8.0}
"""Per seed: GRPO minus Dr. GRPO incorrect length on every prompt of the last window, +-1 by prompt."""
STEPS = 6  # windows of round(6 / 3) = 2 steps: first = 1, 2; last = 5, 6
FINAL = {"grpo": {0: 0.60, 1: 0.62, 2: 0.64}, "drgrpo": {0: 0.61, 1: 0.63, 2: 0.65},
         "gfpo": {0: 0.50, 1: 0.50, 2: 0.50}}
BASE_ACC = 0.30


def _incorrect_length(algo, seed, step, p, gaps=GAPS, spread=1.0):
    """Dr. GRPO 30, GFPO 28; GRPO 30 +- 1 in the first window, 30 + gap/2 +- 1 in the middle and
    30 + gap +- 1 in the last (-1 for even prompts, +1 for odd; +- ``spread`` in general)."""
    if algo == "drgrpo":
        return 30.0
    if algo == "gfpo":
        return 28.0
    g = gaps[seed]
    shift = 0.0 if step <= 2 else (g / 2 if step <= 4 else g)
    return 30.0 + shift + (-spread if p % 2 == 0 else spread)


def _default_correct(step, p, s):
    return p < 2 and s == 0


def _write_run(run, algo, seed, final_acc, prompt_tag="", steps=STEPS, correct=_default_correct, **length_kw):
    """4 prompts x 2 samples per step: by default prompts 0, 1 have one correct sample (length 10)
    and one incorrect; prompts 2, 3 have two incorrect ones. The prompts depend on (seed, step) only."""
    for step in range(1, steps + 1):
        rows = []
        for p in range(4):
            for s in range(2):
                ok = correct(step, p, s)
                rows.append({"step": step, "prompt_index": p, "sample_index": s,
                             "prompt": f"What is {seed}{p} + {step}?{prompt_tag}", "response": "r",
                             "reference": "1", "answer": "1" if ok else "2", "reward": float(ok),
                             "formatted": True,
                             "length": 10 if ok else _incorrect_length(algo, seed, step, p, **length_kw),
                             "finish_reason": "stop", "truncated": False})
        _write_jsonl(schema.rollout_path(str(run), step), rows)
    _write_jsonl(str(run / "metrics.jsonl"), [
        {"step": 0, "eval/mixed/accuracy": BASE_ACC, "eval/average/accuracy": BASE_ACC},
        *[_metrics_row(s, **({"eval/mixed/accuracy": 0.45, "eval/mixed/response_len": 40.0} if s == 3 else {}))
          for s in range(1, steps)],
        _metrics_row(steps, **{"eval/mixed/accuracy": final_acc, "eval/average/accuracy": final_acc}),
    ])


def _make_runs(root, seeds=(0, 1, 2), algos=("grpo", "drgrpo", "gfpo"), final=FINAL, **run_kw):
    runs = {}
    for seed in seeds:
        runs[seed] = {}
        for algo in algos:
            d = root / f"length_{algo}_seed{seed}"
            _write_run(d, algo, seed, final[algo][seed], **run_kw)
            runs[seed][algo] = str(d)
    return runs


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    runs = _make_runs(tmp_path_factory.mktemp("reproduce_runs"))
    return runs, reproduce.length_bias_across_seeds(runs)


def test_eval_curve_and_final_accuracy(tmp_path):
    run = tmp_path / "r"
    _write_run(run, "grpo", 0, 0.6)
    c = reproduce.eval_curve(str(run))
    assert list(c.columns) == ["step", "task", "accuracy"]
    assert set(c["task"]) == {"mixed"}  # the average and response_len keys are left out
    assert c.sort_values("step")[["step", "accuracy"]].values.tolist() == [[0, 0.3], [3, 0.45], [6, 0.6]]
    assert reproduce.final_accuracy(str(run), "mixed") == pytest.approx(0.6)
    # a second task: the final accuracy is per task, at that task's last step
    schema.append_jsonl(str(run / "metrics.jsonl"), [_metrics_row(7, **{"eval/easy/accuracy": 0.9})])
    assert reproduce.final_accuracy(str(run), "easy") == pytest.approx(0.9)
    assert reproduce.final_accuracy(str(run), "mixed") == pytest.approx(0.6)


def test_length_bias_across_three_seeds(three_seeds):
    runs, res = three_seeds
    assert res["seeds"] == [0, 1, 2]
    # per seed: 8 last-window pairs (2 steps x 4 prompts), diffs gap -+ 1 -> mean gap,
    # sd sqrt(8 / 7), SE sqrt(8 / 7) / sqrt(8) = sqrt(1 / 7)
    for rec, (seed, g) in zip(res["per_seed"], GAPS.items()):
        assert rec["seed"] == seed
        assert rec["paired_last_gap"] == pytest.approx(g)
        assert rec["paired_last_se"] == pytest.approx(math.sqrt(1 / 7))
        assert rec["paired_last_pairs"] == 8
        assert rec["paired_first_gap"] == pytest.approx(0.0)
        assert rec["paired_first_se"] == pytest.approx(math.sqrt(1 / 7))
        # unpaired: 6 incorrect responses per step, the -1 and +1 ones balanced
        assert rec["grpo_incorrect_last_mean"] == pytest.approx(30 + g)
        assert rec["grpo_incorrect_first_mean"] == pytest.approx(30.0)
        assert rec["drgrpo_incorrect_last_mean"] == pytest.approx(30.0)
        assert rec["gfpo_incorrect_last_mean"] == pytest.approx(28.0)
        assert rec["grpo_correct_last_mean"] == pytest.approx(10.0)
        assert rec["grpo_incorrect_last_n"] == 12
        assert rec["drgrpo_final_accuracy"] == pytest.approx(FINAL["drgrpo"][seed])
        assert rec["grpo_base_accuracy"] == pytest.approx(BASE_ACC)
    se_seeds = 2 / math.sqrt(3)  # gaps 4, 6, 8: sd 2
    se_pooled = math.sqrt(3 * (1 / 7)) / 3
    assert res["incorrect_gap_tokens"] == pytest.approx(6.0)
    assert res["se_across_seeds"] == pytest.approx(se_seeds)
    assert res["se_pooled_paired"] == pytest.approx(se_pooled)
    assert res["se_used"] == pytest.approx(se_seeds)  # the larger one
    assert res["z"] == pytest.approx(6 / se_seeds) and res["z"] == pytest.approx(5.196152, abs=1e-5)
    t = 4.302653  # Student t, 0.975 quantile, 2 df
    lo, hi = res["ci95_across_seeds"]
    assert lo == pytest.approx(6 - t * se_seeds, abs=1e-5) and hi == pytest.approx(6 + t * se_seeds, abs=1e-5)
    assert lo == pytest.approx(1.031725, abs=1e-5)
    assert res["first_window_gap_tokens"] == pytest.approx(0.0)
    acc = res["final_accuracy"]
    assert set(acc) == {"grpo", "drgrpo", "gfpo"}
    assert acc["grpo"]["mean"] == pytest.approx(0.62) and acc["drgrpo"]["mean"] == pytest.approx(0.63)
    assert acc["gfpo"]["mean"] == pytest.approx(0.50) and acc["grpo"]["base"] == pytest.approx(BASE_ACC)
    assert acc["grpo"]["per_seed"] == pytest.approx([0.60, 0.62, 0.64])
    assert res["drgrpo_minus_grpo_accuracy"] == pytest.approx(0.01)
    assert res["length_bias_shows"] is True  # 6 > 3 x 1.155
    assert res["accuracy_within_5_points"] is True and res["passed"] is True
    assert "+6.0 tokens over 3 seed(s)" in res["summary"] and "z = 5.2" in res["summary"]
    json.dumps(res)  # the verdict is JSON-able


def test_length_bias_fails_when_drgrpo_accuracy_is_6_points_lower(tmp_path):
    final = {"grpo": FINAL["grpo"], "drgrpo": {s: v - 0.06 for s, v in FINAL["grpo"].items()}}
    runs = _make_runs(tmp_path, algos=("grpo", "drgrpo"), final=final)
    res = reproduce.length_bias_across_seeds(runs)
    assert set(res["final_accuracy"]) == {"grpo", "drgrpo"}
    assert res["drgrpo_minus_grpo_accuracy"] == pytest.approx(-0.06)
    assert res["length_bias_shows"] is True
    assert res["accuracy_within_5_points"] is False and res["passed"] is False


def test_length_bias_with_one_seed_has_no_across_seed_se(tmp_path):
    runs = _make_runs(tmp_path, seeds=(0,), algos=("grpo", "drgrpo"))
    res = reproduce.length_bias_across_seeds(runs)
    assert res["incorrect_gap_tokens"] == pytest.approx(4.0)
    assert math.isnan(res["se_across_seeds"]) and res["ci95_across_seeds"] is None
    assert res["se_pooled_paired"] == pytest.approx(math.sqrt(1 / 7))
    assert res["se_used"] == pytest.approx(math.sqrt(1 / 7))
    assert res["z"] == pytest.approx(4 / math.sqrt(1 / 7))
    assert res["length_bias_shows"] is False and res["passed"] is False  # z ~ 10.6, but one seed
    assert res["accuracy_within_5_points"] is True


def test_length_bias_refuses_runs_on_different_prompts(tmp_path):
    runs = _make_runs(tmp_path, seeds=(0,), algos=("grpo",))
    other = tmp_path / "drgrpo_other"
    _write_run(other, "drgrpo", 0, 0.6, prompt_tag=" (another prompt)")
    runs[0]["drgrpo"] = str(other)
    with pytest.raises(RuntimeError, match="seed 0: .*their prompts differ: nothing to pair"):
        reproduce.length_bias_across_seeds(runs)


def _one_pair_at_the_end(step, p, s):
    """Steps 1, 2 as usual; at step 3 only prompt 0 has an incorrect response (the rest correct)."""
    return _default_correct(step, p, s) if step < 3 else not (p == 0 and s == 1)


def test_length_bias_refuses_a_last_window_with_one_pair(tmp_path):
    # 3 steps with pairs -> a window of round(3 / 3) = 1 step; the last one has a single paired
    # prompt: a gap but no SE (NaN), which would otherwise make every later number NaN
    runs = _make_runs(tmp_path, seeds=(0, 1), algos=("grpo", "drgrpo"))
    runs[1] = _make_runs(tmp_path / "short", seeds=(1,), algos=("grpo", "drgrpo"), steps=3,
                         correct=_one_pair_at_the_end)[1]
    p = length_bias.paired_by_prompt(runs[1]["grpo"], runs[1]["drgrpo"])
    assert p["last_pairs"] == 1 and math.isfinite(p["last_mean_diff"]) and math.isnan(p["last_se"])
    with pytest.raises(RuntimeError, match=r"seed 1: fewer than 2 prompts with incorrect responses in both "
                                           r"runs' last window \(1\)"):
        reproduce.length_bias_across_seeds(runs)


def test_length_bias_needs_a_positive_se(tmp_path):
    # the same gap (5) in every seed and on every prompt: SE 0 across seeds and within each, so a
    # positive gap with no spread does not count as shown (z is NaN, not infinite)
    runs = _make_runs(tmp_path, seeds=(0, 1), algos=("grpo", "drgrpo"), gaps={0: 5.0, 1: 5.0}, spread=0.0)
    res = reproduce.length_bias_across_seeds(runs)
    assert res["incorrect_gap_tokens"] == pytest.approx(5.0)
    assert res["se_across_seeds"] == 0.0 and res["se_pooled_paired"] == 0.0 and res["se_used"] == 0.0
    assert math.isnan(res["z"])
    assert res["length_bias_shows"] is False and res["passed"] is False
    assert res["accuracy_within_5_points"] is True
    # any spread at all (within seeds here) and the same gap shows: 5 > 3 x SE
    runs = _make_runs(tmp_path / "spread", seeds=(0, 1), algos=("grpo", "drgrpo"), gaps={0: 5.0, 1: 5.0})
    res = reproduce.length_bias_across_seeds(runs)
    assert res["se_across_seeds"] == 0.0 and res["se_used"] == pytest.approx(math.sqrt(2 / 7) / 2)
    assert res["length_bias_shows"] is True and res["passed"] is True


def test_length_bias_with_no_incorrect_pairs_says_so(tmp_path):
    runs = _make_runs(tmp_path, seeds=(0,), algos=("drgrpo",))
    runs[0].update(_make_runs(tmp_path / "g", seeds=(0,), algos=("grpo",), correct=lambda *_: True)[0])
    with pytest.raises(RuntimeError, match="no .step, prompt. has incorrect responses in both"):
        reproduce.length_bias_across_seeds(runs)


def test_seed_bands(three_seeds):
    runs, _ = three_seeds
    bands = reproduce.seed_bands(runs)
    assert {"algo", "step", "outcome", "seeds", "mean_length", "se_length", "share", "responses"} <= set(bands.columns)
    assert len(bands) == 3 * STEPS * 3  # algos x steps x outcomes; an absent outcome has share 0
    trunc = bands[bands["outcome"] == "truncated"]
    assert (trunc["seeds"] == 0).all() and (trunc["share"] == 0).all() and trunc["mean_length"].isna().all()

    def cell(**where):
        sub = bands
        for k, v in where.items():
            sub = sub[sub[k] == v]
        assert len(sub) == 1, where
        return sub.iloc[0]

    # GRPO, last step, incorrect: per-seed means 34, 36, 38 -> mean 36, SE 2 / sqrt(3)
    c = cell(algo="grpo", step=6, outcome="incorrect")
    assert (c["seeds"], c["responses"]) == (3, 18)
    assert c["mean_length"] == pytest.approx(36.0) and c["se_length"] == pytest.approx(2 / math.sqrt(3))
    assert c["share"] == pytest.approx(6 / 8)
    # the middle window: 30 + gap / 2 -> 32, 33, 34 -> mean 33, SE 1 / sqrt(3)
    m = cell(algo="grpo", step=3, outcome="incorrect")
    assert m["mean_length"] == pytest.approx(33.0) and m["se_length"] == pytest.approx(1 / math.sqrt(3))
    ok = cell(algo="grpo", step=6, outcome="correct")
    assert (ok["mean_length"], ok["se_length"], ok["share"], ok["responses"]) == (10.0, 0.0, 0.25, 6)
    d = cell(algo="drgrpo", step=6, outcome="incorrect")
    assert (d["mean_length"], d["se_length"]) == (30.0, 0.0)
    assert cell(algo="gfpo", step=1, outcome="incorrect")["mean_length"] == 28.0
    # the plot draws from the bands without error
    fig = reproduce.plot_length_bias(bands, three_seeds[1], smooth=1)
    assert len(fig.axes) == 4
    reproduce.plt.close(fig)


# ============================================================================ reproduce: data, few-shot
def test_few_shot_examples():
    ex = reproduce.few_shot_examples()
    assert len(ex) == 4 and ex == reproduce.few_shot_examples()  # seeded
    assert len(reproduce.few_shot_examples(2)) == 2 and reproduce.few_shot_examples(2) == ex[:2]
    for q, sol in ex:
        a, b = synthetic.parse_problem(q)
        assert q == f"What is {a} + {b}?" and not synthetic.is_held_out(a, b)
        assert sol == synthetic.solution(a, b)  # the careful solver: boxed, no re-check, no slip
        assert sol.endswith(f"\\boxed{{{a + b}}}") and "Check:" not in sol


def test_write_data(tmp_path):
    from datasets import load_from_disk

    paths = reproduce.write_data(str(tmp_path / "data"), eval_limit=5)
    assert set(paths) == {"mixed", "easy", "hard", "eval"}
    digits = {"mixed": {2, 3}, "easy": {2}, "hard": {3}}
    train_pairs = set()
    for name, want in digits.items():
        assert paths[name] == str(tmp_path / "data" / f"{name}_train.jsonl")
        with open(paths[name]) as f:
            rows = [json.loads(line) for line in f]
        assert len(rows) == 4000 and all(set(r) == {"problem", "answer"} for r in rows)
        ops = [synthetic.parse_problem(r["problem"]) for r in rows]
        assert all(r["answer"] == str(a + b) for r, (a, b) in zip(rows, ops))
        assert {len(str(x)) for ab in ops for x in ab} == want
        train_pairs |= set(ops)
    ev = load_from_disk(paths["eval"])
    assert set(ev.keys()) == {"mixed", "easy", "hard"}
    for name, want in digits.items():
        assert len(ev[name]) == 5 and ev[name].column_names == ["problem", "answer"]
        ops = [synthetic.parse_problem(p) for p in ev[name]["problem"]]
        assert {len(str(x)) for ab in ops for x in ab} <= want
        assert all(synthetic.is_held_out(a, b) for a, b in ops)
        assert not set(ops) & train_pairs  # no eval problem in any train file
    assert {len(str(x)) for p in ev["easy"]["problem"] for x in synthetic.parse_problem(p)} == {2}
    assert {len(str(x)) for p in ev["hard"]["problem"] for x in synthetic.parse_problem(p)} == {3}
    # rewriting replaces the eval set (a stale split from a bigger eval_limit does not survive)
    paths = reproduce.write_data(str(tmp_path / "data"), eval_limit=3)
    assert {k: len(v) for k, v in load_from_disk(paths["eval"]).items()} == {"mixed": 3, "easy": 3, "hard": 3}
