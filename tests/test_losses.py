"""Hand-computed checks of the losses. Every expected number below is worked out in a comment."""

import math
import statistics

import pytest
import torch

from understand_r1_zero.losses import (
    ALGORITHMS, MVaRTracker, QuantileTracker, aggregate, get_algorithm, group_advantages, kl_penalty,
    mvar_advantages, mvar_paper_scores, policy_loss,
)

R = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # one prompt, G = 4


def close(x, y, tol=1e-5):
    torch.testing.assert_close(torch.as_tensor(x, dtype=torch.float64),
                               torch.as_tensor(y, dtype=torch.float64), atol=tol, rtol=0)


# ---------------------------------------------------------------- group advantages

def test_group_advantages_hand():
    # mean 0.25; unbiased std = sqrt((0.5625 + 3 * 0.0625) / 3) = 0.5
    close(group_advantages(R, scale_by_std=True, eps=0.0), [[1.5, -0.5, -0.5, -0.5]])
    close(group_advantages(R, scale_by_std=False), [[0.75, -0.25, -0.25, -0.25]])


def test_group_advantages_degenerate_and_nan():
    for scale in (True, False):
        assert torch.equal(group_advantages(torch.tensor([[1.0], [0.0]]), scale_by_std=scale),
                           torch.zeros(2, 1))
        assert torch.equal(group_advantages(torch.ones(1, 4), scale_by_std=scale), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="non-finite"):
        group_advantages(torch.tensor([[1.0, float("nan")]]), scale_by_std=True)


# ---------------------------------------------------------------- policy loss

def _four_sequences():
    """Lengths [2, 4, 1, 3], old logprobs 0, ratios as given; logprobs = log(ratio)."""
    ratios = [[1.5, 1.0], [0.5, 1.0, 1.1, 0.7], [0.9], [1.3, 1.0, 0.6]]
    lp = torch.zeros(4, 4, dtype=torch.float64)
    mask = torch.zeros(4, 4)
    for i, r in enumerate(ratios):
        lp[i, :len(r)] = torch.log(torch.tensor(r, dtype=torch.float64))
        mask[i, :len(r)] = 1
    return lp, torch.zeros_like(lp), mask


def test_grpo_loss_hand():
    # A = [1.5, -0.5, -0.5, -0.5]; token loss max(-A*rho, -A*clip(rho, 0.8, 1.2)):
    # seq0: max(-2.25, -1.8) = -1.8, -1.5            -> mean -1.65
    # seq1: 0.4 (0.5 clipped up to 0.8), 0.5, 0.55, 0.4 (0.7 -> 0.8) -> mean 0.4625
    # seq2: 0.45                                      -> mean 0.45
    # seq3: 0.65 (1.3 unclipped wins for A<0), 0.5, 0.4 -> mean 0.516667
    # (-1.65 + 0.4625 + 0.45 + 0.516667) / 4 = -0.0552083
    lp, old, mask = _four_sequences()
    adv = group_advantages(R, scale_by_std=True, eps=0.0).flatten().double()
    close(policy_loss(lp, old, adv, mask), -0.0552083)


def test_drgrpo_loss_hand():
    # A = [0.75, -0.25, -0.25, -0.25]: token sums -1.65, 0.925, 0.225, 0.775 -> 0.275
    # 0.275 / max_len 4 / 4 sequences = 0.0171875
    lp, old, mask = _four_sequences()
    adv = group_advantages(R, scale_by_std=False).flatten().double()
    close(policy_loss(lp, old, adv, mask, agg="seq_mean_token_sum_norm", max_len=4), 0.0171875, 1e-9)
    with pytest.raises(ValueError, match="max_len"):
        policy_loss(lp, old, adv, mask, agg="seq_mean_token_sum_norm")


def test_token_mean_hand_and_stats():
    # GRPO token values summed: -3.3 + 1.85 + 0.45 + 1.55 = 0.55 over 10 tokens
    lp, old, mask = _four_sequences()
    adv = torch.tensor([1.5, -0.5, -0.5, -0.5], dtype=torch.float64)
    loss, st = policy_loss(lp, old, adv, mask, agg="token_mean", return_stats=True)
    close(loss, 0.055)
    # clipped: seq0 rho 1.5 (A>0, high); seq1 rho 0.5 and 0.7, seq3 rho 0.6 (A<0, low) -> 4 of 10
    close(st["clip_frac"], 0.4)
    close(st["clip_frac_high"], 0.1)
    close(st["clip_frac_low"], 0.3)
    close(st["ratio_max"], 1.5)
    close(st["ratio_mean"], (2.5 + 3.3 + 0.9 + 2.9) / 10)
    # DAPO's clip-higher 0.28: seq0 rho 1.5 still clipped at 1.28 -> -1.92 instead of -1.8
    close(policy_loss(lp, old, adv, mask, agg="token_mean", clip_high=0.28), 0.055 - 0.12 * 1.0 / 10)


def test_empty_sequence_and_garbage_padding_no_nan():
    lp, old, mask = _four_sequences()
    lp = lp.clone()
    mask[2] = 0  # a sequence with no response tokens
    lp[mask == 0] = 1e4  # garbage at padding: exp would overflow without the guard
    lp.requires_grad_(True)
    adv = torch.tensor([1.5, -0.5, -0.5, -0.5], dtype=torch.float64)
    for agg in ("seq_mean_token_mean", "seq_mean_token_sum_norm", "token_mean"):
        lp.grad = None
        loss = policy_loss(lp, old, adv, mask, agg=agg, max_len=4)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(lp.grad).all()
        assert (lp.grad[mask == 0] == 0).all()
    with pytest.raises(ValueError, match="valid"):
        aggregate(lp, mask, "seq_mean")


@pytest.mark.parametrize("agg", ["seq_mean_token_mean", "seq_mean_token_sum_norm", "token_mean"])
def test_micro_batch_and_rank_invariance(agg):
    g = torch.Generator().manual_seed(0)
    N, T = 10, 7
    base = -torch.rand(N, T, generator=g, dtype=torch.float64)
    old = base + 0.3 * torch.randn(N, T, generator=g, dtype=torch.float64)
    lengths = torch.tensor([7, 1, 0, 3, 5, 2, 7, 4, 6, 1])
    mask = (torch.arange(T) < lengths[:, None]).float()
    adv = torch.randn(N, generator=g, dtype=torch.float64)
    kw = dict(agg=agg, max_len=T)

    full_lp = base.clone().requires_grad_(True)
    full = policy_loss(full_lp, old, adv, mask, **kw)
    full.backward()

    glob = dict(num_seqs=N, num_tokens=int(mask.sum()))
    ranks = [[[0, 1, 2], [3, 4]], [[5], [6, 7, 8, 9]]]  # 2 ranks, uneven micro-batches
    total, grad = 0.0, torch.zeros_like(base)
    for micro_batches in ranks:
        lp = base.clone().requires_grad_(True)  # this rank's own parameters' view
        for idx in micro_batches:
            loss = policy_loss(lp[idx], old[idx], adv[idx], mask[idx], **kw, **glob)
            loss.backward()  # accumulate within the rank
            total += loss.item()
        grad += lp.grad  # all-reduce SUM across ranks
    close(total, full.item(), 1e-12)
    close(grad, full_lp.grad, 1e-12)


# ---------------------------------------------------------------- KL

def test_kl_estimators_hand():
    lp = torch.tensor([-1.0, -2.0])
    ref = torch.tensor([-1.5, -1.0])  # d = ref - lp = [-0.5, 1.0]
    close(kl_penalty(lp, ref, "k1"), [0.5, -1.0])
    close(kl_penalty(lp, ref, "k2"), [0.125, 0.5])
    close(kl_penalty(lp, ref, "k3"), [math.exp(-0.5) - 0.5, math.e - 2.0])  # e^d - d - 1
    for kind in ("k1", "k2", "k3"):
        assert torch.equal(kl_penalty(lp, lp, kind), torch.zeros(2))
    with pytest.raises(ValueError):
        kl_penalty(lp, ref, "k4")
    # beta * same aggregation: token_mean of k3 over the two tokens
    close(aggregate(kl_penalty(lp[None], ref[None]), torch.ones(1, 2), "token_mean"),
          (math.exp(-0.5) - 0.5 + math.e - 2.0) / 2)


# ---------------------------------------------------------------- quantile tracker

def test_tracker_hand_and_state():
    t = QuantileTracker([0.2, 0.9], lr=0.1)
    assert t.value(0.2) is None and t.tracked(0.2, 0.9) is None
    s = torch.tensor([2.0, 1.0, 2.0, 0.0])  # sorted [0, 1, 2, 2]
    t.update(s)  # q0.2 = 0 + 0.6 * 1 = 0.6;  q0.9 = 2 + 0.7 * 0 = 2.0
    close(t.value(0.2), 0.6, 1e-12)
    close(t.value(0.9), 2.0, 1e-12)
    t.update([s[:2], s[2:]])  # 0.6 + 0.1 * (0.2 - 1/4) = 0.595;  2 + 0.1 * (0.9 - 2/4) = 2.04
    close(t.tracked(0.2, 0.9), (0.595, 2.04), 1e-12)
    t2 = QuantileTracker([0.2, 0.9], lr=0.5)
    t2.load_state_dict(t.state_dict())
    assert t2.state_dict() == t.state_dict()
    with pytest.raises(ValueError):
        QuantileTracker([0.1, 0.9], 0.1).load_state_dict(t.state_dict())
    with pytest.raises(ValueError, match="tracked levels"):
        t.value(0.5)


# ---------------------------------------------------------------- MVaR
# One bundle of two questions: q1 = [1, 0, 1, 0], q2 = [1, 1, 1, 0] -> papers s = [2, 1, 2, 0].
# Batch quantiles of sorted [0, 1, 2, 2]: a = q0.2 = 0.6, b = q0.9 = 2.0 (beta - alpha = 0.7).
# R = (clamp(s, a, b) - b) / 0.7 = [0, -10/7, 0, -2];  C = -(a - s)^+ / 0.2 = [0, 0, 0, -3]
# A_paper = (1.5 C + R) / 2.5 = [0, -4/7, 0, -2.6]
Q2 = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
PAPER = [0.0, -4 / 7, 0.0, -2.6]
MV = dict(bundle_size=2, std_norm=False, eps=0.0, q_mode="batch")


def test_mvar_paper_scores():
    s = mvar_paper_scores(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), 2)
    assert len(s) == 2
    close(s[0], [2.0, 1.0])
    close(s[1], [0.0, 1.0])


def test_mvar_credit_uniform():
    close(mvar_advantages(Q2, credit="uniform", **MV), [PAPER, PAPER])


def test_mvar_credit_std():
    # std(q1) = sqrt(1/3) -> x sqrt(3);  std(q2) = 0.5 -> x 2
    close(mvar_advantages(Q2, credit="std", **MV),
          [[p * math.sqrt(3) for p in PAPER], [p * 2 for p in PAPER]])
    # a constant question (std 0 <= 1e-3) gets divisor 1.0
    const = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    adv = mvar_advantages(const, credit="std", **MV)
    close(adv[1], mvar_advantages(const, credit="uniform", **MV)[1])
    near = const.clone()
    near[1, 3] += 2e-4  # std 1e-4 <= 1e-3: still divisor 1.0, not 1e-4
    assert mvar_advantages(near, credit="std", **MV).abs().max() < 10


def test_mvar_credit_score():
    # x0.5 where reward > 0, x1.5 otherwise
    close(mvar_advantages(Q2, credit="score", **MV),
          [[0.0, -6 / 7, 0.0, -3.9], [0.0, -2 / 7, 0.0, -3.9]])


def test_mvar_credit_sum_mean():
    # dev q1 = [.5, -.5, .5, -.5], q2 = [.25, .25, .25, -.75]; sums [.75, -.25, .75, -1.25]
    # paper 1: -4/7 * (-.5/-.25 = 2) = -8/7 and -4/7 * (.25/-.25 = -1) = +4/7
    # paper 3: -2.6 * 0.4 = -1.04 and -2.6 * 0.6 = -1.56
    close(mvar_advantages(Q2, credit="sum-mean", **MV),
          [[0.0, -8 / 7, 0.0, -1.04], [0.0, 4 / 7, 0.0, -1.56]])


def test_mvar_sum_mean_equal_split_and_track():
    # q1 = [1, 0], q2 = [0, 1]: s = [1, 1]; dev sums are 0 -> split equally over 2 questions.
    # tracked a = 1.5, b = 1.8: R = (a - b) / 0.7 = -3/7; C = -0.5 / 0.2 = -2.5
    # A_paper = (1.5 * -2.5 - 3/7) / 2.5 = -1.6714286; each response gets half
    r = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    kw = dict(MV, q_mode="track", tracked=(1.5, 1.8))
    half = (1.5 * -2.5 - 3 / 7) / 2.5 / 2
    close(mvar_advantages(r, credit="sum-mean", **kw), [[half, half], [half, half]])
    # std_norm: the papers' advantages are constant (std 0): the guard divides by 1, not 1e-6
    close(mvar_advantages(r, credit="uniform", **dict(kw, std_norm=True)), [[2 * half] * 2] * 2)
    # nearly constant (s = [1, 1.0001]; advantages differ by 3e-4): same guard, no 1e4 blow-up
    near = torch.tensor([[1.0, 0.0], [0.0, 1.0001]], dtype=torch.float64)
    assert mvar_advantages(near, credit="uniform", **dict(kw, std_norm=True)).abs().max() < 10


def test_mvar_q_modes():
    uni = dict(MV, credit="uniform")
    # track, (a, b) = (0.5, 1.5): R = [0, -5/7, 0, -10/7], C = [0, 0, 0, -2.5] -> [0, -2/7, 0, -29/14]
    close(mvar_advantages(Q2, **dict(uni, q_mode="track", tracked=(0.5, 1.5)))[0],
          [0.0, -2 / 7, 0.0, -29 / 14])
    # mix: a = (0.6 + 0.5)/2 = 0.55, b = (2.0 + 1.5)/2 = 1.75
    # R = [0, -15/14, 0, -12/7], C = [0, 0, 0, -2.75] -> [0, -3/7, 0, (-4.125 - 12/7)/2.5]
    close(mvar_advantages(Q2, **dict(uni, q_mode="mix", tracked=(0.5, 1.5)))[0],
          [0.0, -3 / 7, 0.0, (-4.125 - 12 / 7) / 2.5])
    # first step (no tracked values) falls back to batch; batch ignores tracked
    close(mvar_advantages(Q2, **dict(uni, q_mode="track", tracked=None))[0], PAPER)
    close(mvar_advantages(Q2, **dict(uni, q_mode="mix", tracked=(None, None)))[0], PAPER)
    close(mvar_advantages(Q2, **dict(uni, tracked=(0.5, 1.5)))[0], PAPER)
    with pytest.raises(ValueError, match="q_mode"):
        mvar_advantages(Q2, **dict(uni, q_mode="ema"))


def test_mvar_natural_baseline_off():
    # R = (clamp(s, 0.6, 2) - 0.6) / 0.7 = [2, 4/7, 2, 0] -> A = [0.8, 1.6/7, 0.8, -1.8]
    close(mvar_advantages(Q2, credit="uniform", natural_baseline=False, **MV)[0],
          [0.8, 1.6 / 7, 0.8, -1.8])


def test_mvar_std_norm():
    adv = mvar_advantages(Q2, credit="uniform", **dict(MV, std_norm=True, std_of="advantage"))
    close(adv[0], [p / statistics.stdev(PAPER) for p in PAPER])
    # the released code's rule, now the default: std of the paper scores [2, 1, 2, 0]
    for kw in (dict(std_of="score"), {}):
        adv = mvar_advantages(Q2, credit="uniform", **dict(MV, std_norm=True, **kw))
        close(adv[0], [p / statistics.stdev([2, 1, 2, 0]) for p in PAPER])


def test_mvar_smaller_last_bundle():
    # bundles {q0, q1} and {q2}; q2 = [1, 0] alone: s = [1, 0], a = 0.2, b = 0.9
    # R = [0, (0.2 - 0.9)/0.7 = -1], C = [0, -1] -> A = [0, (-1.5 - 1)/2.5 = -1]
    r = torch.cat([Q2, torch.tensor([[1.0, 0.0, 1.0, 1.0]])])[:, :2]
    uni = dict(MV, credit="uniform")
    adv = mvar_advantages(r, **uni)
    assert adv.shape == (3, 2)
    close(adv[2], [0.0, -1.0])
    close(adv[:2], mvar_advantages(r[:2], **uni))


def test_mvar_single_paper_and_nan_guard():
    r = torch.tensor([[1.0], [0.0]])  # G = 1: one paper, s = [1]
    for credit in ("uniform", "std", "score", "sum-mean"):
        out = mvar_advantages(r, bundle_size=2, credit=credit, q_mode="batch")
        assert torch.equal(out, torch.zeros(2, 1))  # a = b = s: no signal, and no NaN
    # tracked (0.5, 1.5): R = (1 - 1.5)/0.7 = -5/7, C = 0 -> -2/7; std of one paper is 1
    out = mvar_advantages(r, bundle_size=2, credit="std", q_mode="track", tracked=(0.5, 1.5), eps=0.0)
    close(out, [[-2 / 7], [-2 / 7]])
    with pytest.raises(ValueError, match="non-finite"):
        mvar_advantages(torch.tensor([[1.0, float("nan")]]), bundle_size=1)


# ---------------------------------------------------------------- registry

def test_registry():
    assert set(ALGORITHMS) >= {"grpo", "drgrpo", "mvar", "dapo"}
    grpo, dr, mvar, dapo = (get_algorithm(n) for n in ("grpo", "drgrpo", "mvar", "dapo"))
    close(grpo.advantages(R, eps=0.0), [[1.5, -0.5, -0.5, -0.5]])
    close(dr.advantages(R), [[0.75, -0.25, -0.25, -0.25]])
    assert (grpo.agg, dr.agg, mvar.agg, dapo.agg) == (
        "seq_mean_token_mean", "seq_mean_token_sum_norm", "token_mean", "token_mean")
    assert dapo.clip_high == 0.28 and dapo.clip_low == 0.2 and grpo.clip_high == 0.2
    assert mvar.tracker is MVaRTracker and mvar.prompts_multiple_of == "bundle_size"
    assert grpo.tracker is None and grpo.loss_fn is policy_loss and not (grpo.sampler_logprobs or grpo.ref_model)
    assert mvar.defaults["bundle_size"] == 5
    assert (mvar.defaults["alpha"], mvar.defaults["beta"], mvar.defaults["w_mix"]) == (0.2, 0.9, 1.5)
    rewards = torch.randint(0, 2, (10, 4)).float()
    close(mvar.advantages(rewards, tracked=(1.0, 3.0)),
          mvar_advantages(rewards, bundle_size=5, credit="std", q_mode="track", tracked=(1.0, 3.0)))
    with pytest.raises(ValueError, match="valid"):
        get_algorithm("ppo")
    with pytest.raises(TypeError):
        mvar.defaults["alpha"] = 0.1  # defaults are read-only
