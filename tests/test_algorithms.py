"""The GRPO family beyond GRPO / Dr. GRPO / MVaR: hand-computed values for each new piece, an
equivalence with TRL's GSPO formula, the released RiskPO advantage rule from an independent
implementation, and one CPU training step per new algorithm."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from understand_r1_zero.losses import (
    ALGORITHMS, cispo_loss, dapo_overlong, get_algorithm, gfpo_advantages, group_advantages, gspo_loss,
    gvpo_loss, gvpo_weights, mvar_advantages, overlong_penalty, policy_loss,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def close(a, b, tol=1e-5):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32),
                               atol=tol, rtol=tol)


# ---------------------------------------------------------------- advantages

def test_scale_rewards_group_batch_none():
    R = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    centred = [[0.75, -0.25, -0.25, -0.25], [0.5, 0.5, -0.5, -0.5]]
    close(group_advantages(R, scale="none"), centred)
    close(group_advantages(R, scale="group", eps=0.0), [[1.5, -0.5, -0.5, -0.5], [0.866025, 0.866025, -0.866025, -0.866025]])
    batch_std = float(np.std([1, 0, 0, 0, 1, 1, 0, 0], ddof=1))  # 0.534522
    close(group_advantages(R, scale="batch", eps=0.0), torch.tensor(centred) / batch_std)
    # the old spelling is the same function
    close(group_advantages(R, scale_by_std=True), group_advantages(R, scale="group"))
    close(get_algorithm("drgrpo").advantages(R), centred)  # each algorithm keeps its own default
    close(get_algorithm("grpo").advantages(R, scale="none"), centred)  # --scale_rewards none
    with pytest.raises(ValueError, match="valid"):
        group_advantages(R, scale="global")


def test_gfpo_keeps_the_k_best_and_zeroes_the_rest():
    R = torch.tensor([[1.0, 0.5, 1.0, 0.0]])
    L = torch.tensor([[10, 2, 5, 1]])
    # shortest two: samples 3 (len 1) and 1 (len 2), rewards [0, 0.5]: advantages over that pair only
    s = 1 / math.sqrt(2)
    close(gfpo_advantages(R, lengths=L, keep=2, eps=0.0), [[0.0, s, 0.0, -s]])
    # best reward per token: 0.5/2 = 0.25 (sample 1) and 1/5 = 0.2 (sample 2), rewards [0.5, 1]
    close(gfpo_advantages(R, lengths=L, keep=2, metric="reward_per_token", eps=0.0), [[0.0, -s, s, 0.0]])
    close(gfpo_advantages(R, lengths=L, keep=0, eps=0.0), [[0.0, s, 0.0, -s]])  # 0 = half of G
    close(gfpo_advantages(R, lengths=L, keep=4), group_advantages(R, scale="group"))  # keep G = GRPO
    ties = gfpo_advantages(torch.tensor([[1.0, 0.0, 1.0, 0.0]]), lengths=torch.tensor([[3, 3, 3, 3]]), keep=2, eps=0.0)
    close(ties, [[s, -s, 0.0, 0.0]])  # equal lengths: the earlier samples are kept
    R = (torch.arange(64) % 3 == 0).float()[None]  # 64 equal lengths: an unstable sort would scatter the pick
    wide = gfpo_advantages(R, lengths=torch.full((1, 64), 5), keep=16)
    assert (wide[0, 16:] == 0).all() and (wide[0, :16] != 0).all()


def test_overlong_penalty_is_dapo_eq13():
    lengths = torch.tensor([5, 6, 7, 10, 11])
    # L_max 10, L_cache 4: 0 up to 6, then (6 - |y|) / 4, -1 past 10
    close(overlong_penalty(lengths, max_len=10, buffer=4), [0.0, 0.0, -0.25, -1.0, -1.0])
    close(overlong_penalty(lengths, max_len=10, buffer=0), [0.0] * 5)
    # dapo's default L_cache is a fifth of the budget: 2 of 10, so the soft zone starts after 8
    close(dapo_overlong(torch.ones(5), lengths, max_len=10), [1.0, 1.0, 1.0, 0.0, 0.0])
    close(dapo_overlong(torch.ones(5), lengths, max_len=10, overlong_buffer=4), [1.0, 1.0, 0.75, 0.0, 0.0])


# ---------------------------------------------------------------- losses

def _batch():
    g = torch.Generator().manual_seed(0)
    lp = (-torch.rand(3, 5, generator=g) * 2).requires_grad_()
    old = lp.detach() + 0.3 * torch.randn(3, 5, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.float32)
    adv = torch.tensor([1.0, -0.5, 2.0])
    return lp, old, mask, adv


def _trl_gspo(lp, old, adv, mask, eps_low, eps_high):
    """TRL GRPOTrainer's importance_sampling_level="sequence" with loss_type="grpo", written from
    its formula: a length-normalised sequence log-weight at every token, PPO-clip, then a mean
    over responses of each response's token mean."""
    log_ratio = lp - old
    log_w = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)  # [N, 1]
    coef_1 = torch.exp(log_w)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    per_token = -torch.min(coef_1 * adv.unsqueeze(1), coef_2 * adv.unsqueeze(1))  # [N, 1] -> broadcast
    per_token = per_token.expand_as(lp)
    return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()


def test_gspo_equals_trls_sequence_level_loss_and_gradient():
    lp, old, mask, adv = _batch()
    ours = gspo_loss(lp, old, adv, mask, clip_low=3e-4, clip_high=4e-4, agg="seq_mean_token_mean")
    g_ours, = torch.autograd.grad(ours, lp)
    lp2 = lp.detach().clone().requires_grad_()
    theirs = _trl_gspo(lp2, old, adv, mask, 3e-4, 4e-4)
    g_theirs, = torch.autograd.grad(theirs, lp2)
    close(ours, theirs), close(g_ours, g_theirs)
    # hand value of one response: s = exp(mean log ratio), clipped to [1 - 3e-4, 1 + 4e-4]
    s0 = math.exp(((lp - old)[0, :3]).mean().item())
    one = gspo_loss(lp[:1], old[:1], adv[:1], mask[:1], clip_low=3e-4, clip_high=4e-4, agg="seq_mean_token_mean")
    assert one.item() == pytest.approx(-min(s0, min(max(s0, 1 - 3e-4), 1 + 4e-4)), rel=1e-5)
    # on-policy single update: ratio 1, GSPO's loss is GRPO's
    close(gspo_loss(lp, lp.detach(), adv, mask, agg="seq_mean_token_mean"),
          policy_loss(lp, lp.detach(), adv, mask, agg="seq_mean_token_mean"))


def test_dual_clip_caps_negative_advantage_losses():
    lp = torch.log(torch.tensor([[5.0, 0.5]]))  # ratios 5 and 0.5 against old logprob 0
    old = torch.zeros(1, 2)
    mask = torch.ones(1, 2)
    neg, pos = torch.tensor([-1.0]), torch.tensor([1.0])
    # A = -1: PPO-clip gives max(5, 1.2) = 5 and max(0.5, 0.8) = 0.8; dual-clip c = 3 caps the 5 at 3
    close(policy_loss(lp, old, neg, mask, agg="token_mean"), (5.0 + 0.8) / 2)
    close(policy_loss(lp, old, neg, mask, agg="token_mean", clip_ratio_c=3.0), (3.0 + 0.8) / 2)
    # A = +1 is untouched: max(-5, -1.2) = -1.2 and max(-0.5, -0.5) = -0.5
    close(policy_loss(lp, old, pos, mask, agg="token_mean", clip_ratio_c=3.0), (-1.2 - 0.5) / 2)


def test_cispo_is_reinforce_with_a_clipped_detached_weight():
    lp, old, mask, adv = _batch()
    loss, stats = cispo_loss(lp, old, adv, mask, clip_low=1.0, clip_high=0.28, agg="token_mean", return_stats=True)
    w = torch.exp(lp.detach() - old).clamp(0.0, 1.28)
    n = mask.sum()
    close(loss, (-(w * adv[:, None] * lp.detach()) * mask).sum() / n)
    g, = torch.autograd.grad(loss, lp)
    close(g, -(w * adv[:, None]) * mask / n)  # every token keeps its gradient, scaled by the weight
    ratio = torch.exp(lp.detach() - old)
    assert stats["clip_frac"].item() == pytest.approx(((ratio > 1.28) & mask.bool()).sum().item() / n.item())


# ---------------------------------------------------------------- MVaR: the released code's rule

def _riskpo_release(rewards, bundle_size, alpha, beta, w, eps=1e-6):
    """RiskPO's released per-bundle advantage (q_mode batch, std of the paper scores, credit std),
    written from its formulas in plain numpy loops."""
    P, G = rewards.shape
    out = np.zeros((P, G))
    for b0 in range(0, P, bundle_size):
        r = rewards[b0:b0 + bundle_size]
        s = r.sum(0)
        a, b = np.quantile(s, alpha), np.quantile(s, beta)  # numpy's linear = torch.quantile's
        adv = np.zeros(G)
        for k in range(G):
            rvar = (max(s[k] - a, 0) - max(s[k] - b, 0) + (a - b)) / (beta - alpha + eps)
            cvar = -max(a - s[k], 0) / (alpha + eps)
            adv[k] = (w * cvar + rvar) / (w + 1)
        std = np.std(s, ddof=1)
        adv = adv / ((std if std > 1e-3 else 1.0) + eps)
        for q in range(r.shape[0]):
            sq = np.std(r[q], ddof=1)
            out[b0 + q] = adv / ((sq if sq > 1e-3 else 1.0) + eps)
    return out


def test_mvar_batch_score_std_reproduces_the_release():
    rng = np.random.default_rng(0)
    for _ in range(5):
        R = rng.integers(0, 2, size=(10, 8)).astype(np.float64)
        ours = mvar_advantages(torch.tensor(R), bundle_size=5, q_mode="batch", std_of="score", credit="std")
        np.testing.assert_allclose(ours.numpy(), _riskpo_release(R, 5, 0.2, 0.9, 1.5), atol=1e-6)
    # the default is now the release's std, and the algorithm's flags reach every switch
    R = torch.tensor(rng.integers(0, 2, size=(5, 8)).astype(np.float32))
    close(mvar_advantages(R, bundle_size=5), mvar_advantages(R, bundle_size=5, std_of="score"))
    assert set(ALGORITHMS["mvar"].flags) >= {"std_of", "natural_baseline", "std_norm"}


# ---------------------------------------------------------------- one CPU step each

@pytest.mark.parametrize("algo", ["gspo", "cispo", "gfpo", "dapo", "gvpo", "grpo+knobs"])
def test_new_algorithm_trains_a_step(tiny_model_dir, tmp_path, algo):
    from understand_r1_zero import schema

    knobs = dict(clip_ratio_c=3.0, scale_rewards="batch") if algo.endswith("+knobs") else {}
    algo = algo.split("+")[0]
    flags = dict(algo=algo, **knobs, pretrain=tiny_model_dir, eval_data="", rollout_batch_size=2, num_samples=4,
                 micro_batch_size=4, train_batch_size=4, generate_max_length=10, max_steps=1,
                 save_path=tmp_path / "run", progress=False, grade_workers=0, learning_rate=1e-3)
    args = [x for k, v in flags.items() for x in (f"--{k}", str(v))]
    env = {**os.environ, "DS_ACCELERATOR": "cpu"}
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train_zero_math.py")] + args, capture_output=True,
                       text=True, env=env, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    row = schema.read_metrics(str(tmp_path / "run"))[-1]
    assert row["step"] == 1 and math.isfinite(row["train/loss"]) and math.isfinite(row["train/grad_norm"])
    if algo == "dapo":  # every logged reward is a 0/1 grade plus the overlong punishment of its length
        for r in schema.read_rollouts(str(tmp_path / "run")):
            base = r["reward"] - overlong_penalty(torch.tensor([r["length"]]), max_len=10, buffer=2).item()
            assert base == pytest.approx(0.0 if r["truncated"] else round(base)) and round(base) in (0, 1), r


# ---------------------------------------------------------------- the mismatch correction

def test_mismatch_weights_truncate_and_mask_token_and_sequence():
    from understand_r1_zero.losses import mismatch_weights

    old = torch.log(torch.tensor([[0.5, 0.9, 0.2], [0.4, 0.4, 0.1]]))
    samp = torch.log(torch.tensor([[0.25, 0.9, 0.5], [0.4, 0.1, 0.1]]))
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    # token ratios: [2, 1, 0.4], [1, 4, (masked)]
    close(mismatch_weights(old, samp, mask, cap=3.0), [[2.0, 1.0, 0.4], [1.0, 3.0, 0.0]])
    close(mismatch_weights(old, samp, mask, cap=3.0, mode="mask"), [[2.0, 1.0, 0.4], [1.0, 0.0, 0.0]])
    # sequence ratios: 2 * 1 * 0.4 = 0.8 and 1 * 4 = 4 (the masked token does not count)
    close(mismatch_weights(old, samp, mask, cap=3.0, level="sequence"), [[0.8] * 3, [3.0, 3.0, 0.0]])
    close(mismatch_weights(old, samp, mask, cap=3.0, level="sequence", mode="mask"), [[0.8] * 3, [0.0] * 3])
    lp = old.clone().requires_grad_()
    w = mismatch_weights(old, samp, mask, cap=3.0)
    adv = torch.tensor([1.0, -1.0])
    plain = policy_loss(lp, old, adv, mask, agg="token_mean")
    weighted = policy_loss(lp, old, adv, mask, agg="token_mean", weights=w)
    # ratio 1 (old = current): per-token losses -A, so the weighted mean is -sum(A_i w_it) / 5
    close(plain, -(3 * 1.0 - 2 * 1.0) / 5)
    close(weighted, -((2.0 + 1.0 + 0.4) - (1.0 + 3.0)) / 5)


def test_mismatch_audit_and_correction_run_in_a_step(tiny_model_dir, tmp_path):
    """--tis_cap on the CPU e2e; the audit is logged on every step, with or without it. One
    process, fp32, the same weights in actor and learner: the audit reads ~0, the weights ~1."""
    from understand_r1_zero import schema

    flags = dict(pretrain=tiny_model_dir, eval_data="", rollout_batch_size=2, num_samples=4, micro_batch_size=4,
                 generate_max_length=10, max_steps=1, save_path=tmp_path / "run", progress=False, grade_workers=0,
                 tis_cap=2.0, tis_level="sequence", tis_mode="mask")
    args = [x for k, v in flags.items() for x in (f"--{k}", str(v))]
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train_zero_math.py")] + args, capture_output=True,
                       text=True, env={**os.environ, "DS_ACCELERATOR": "cpu"}, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    row = schema.read_metrics(str(tmp_path / "run"))[-1]
    assert row["mismatch/logprob_abs_diff"] < 1e-4 and abs(row["mismatch/kl_k3"]) < 1e-6
    assert row["mismatch/ratio_outside_frac"] == 0.0 and row["mismatch/ratio_max"] == pytest.approx(1.0, abs=1e-3)
    assert row["mismatch/tis_weight_mean"] == pytest.approx(1.0, abs=1e-3) and row["mismatch/tis_cut_frac"] == 0.0


# ---------------------------------------------------------------- GVPO

def test_gvpo_weights_by_hand_and_zero_sum():
    centred = torch.tensor([0.5, -0.5, 0.0, 0.75, -0.25, -0.5])  # two groups of G = 3
    cur = torch.tensor([-3.0, -5.0, -2.0, -4.0, -1.0, -6.0])
    anchor = torch.tensor([-4.0, -4.0, -2.0, -2.0, -2.0, -2.0])
    w = gvpo_weights(centred, cur, anchor, beta=0.5, group_size=3)
    # group 1: r = 0.5 * [1, -1, 0] (mean 0) -> w = c - r = [0.5 - 0.5, -0.5 + 0.5, 0 - 0]
    # group 2: r = 0.5 * [-2, 1, -4] = [-1, 0.5, -2] (mean -5/6) -> r - mean = [-1/6, 4/3, -7/6]
    close(w, [0.0, 0.0, 0.0, 0.75 + 1 / 6, -0.25 - 4 / 3, -0.5 + 7 / 6])
    rng = torch.Generator().manual_seed(1)
    R = torch.randint(0, 2, (4, 5), generator=rng).float()
    w = gvpo_weights((R - R.mean(1, keepdim=True)).reshape(-1), torch.randn(20, generator=rng),
                     torch.randn(20, generator=rng), beta=0.1, group_size=5)
    close(w.view(4, 5).sum(1), torch.zeros(4))  # zero-sum per group: the partition function cancels


def test_gvpo_gradient_equals_the_released_mse_form():
    """verl's GVPO recipe: L = sum_i 0.5 ((r_i - mean r) - (R_i - mean R))^2 / (G - 1), r_i = beta *
    (sum_t lp_it - sum_t anchor_it); our weighted log-likelihood has the same gradient."""
    g = torch.Generator().manual_seed(0)
    G, P, T, beta = 4, 2, 6, 0.2
    lp = (-torch.rand(P * G, T, generator=g) * 3).requires_grad_()
    anchor = -torch.rand(P * G, T, generator=g) * 3
    mask = (torch.rand(P * G, T, generator=g) > 0.2).float()
    R = torch.randint(0, 2, (P, G), generator=g).float()
    c = (R - R.mean(1, keepdim=True)).reshape(-1)
    seq = (lp * mask).sum(-1)
    r = (beta * (seq - (anchor * mask).sum(-1))).view(P, G)
    mse = (0.5 * ((r - r.mean(1, keepdim=True)) - c.view(P, G)) ** 2).sum() / (G - 1) / P  # mean over groups
    g_mse, = torch.autograd.grad(mse, lp)
    w = gvpo_weights(c, seq.detach(), (anchor * mask).sum(-1), beta=beta, group_size=G)
    ours = gvpo_loss(lp, lp.detach(), w, mask, beta=beta, group_size=G)
    g_ours, = torch.autograd.grad(ours, lp)
    close(g_ours, g_mse, tol=1e-5)
    assert get_algorithm("gvpo").ref_model and get_algorithm("gvpo").reweight is not None


def _trl_is_ratio(old, sampling, mask, mode, cap):
    """TRL GRPOTrainer's vllm_importance_sampling_correction (its four modes, clip_min None),
    written from its formula: the (masked) log-difference, summed per sequence for sequence_*,
    exp, then clamp(max=cap) or zero where > cap."""
    diff = (old - sampling) * mask
    if mode.startswith("sequence"):
        diff = diff.sum(-1, keepdim=True)
    ratio = torch.exp(diff)
    return ratio.clamp(max=cap) if mode.endswith("truncate") else ratio.masked_fill(ratio > cap, 0.0)


@pytest.mark.parametrize("mode", ["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"])
def test_mismatch_correction_equals_trls(mode):
    from understand_r1_zero.losses import mismatch_weights

    g = torch.Generator().manual_seed(3)
    lp, old, mask, adv = _batch()
    sampling = old - 0.4 * torch.randn(old.shape, generator=g)
    level, how = mode.split("_")
    ours = mismatch_weights(old, sampling, mask, cap=1.5, level=level, mode=how)
    theirs = _trl_is_ratio(old, sampling, mask, mode, 1.5).expand_as(old) * mask
    close(ours, theirs)
    # ... and into the loss: TRL multiplies its per-token loss by the ratio, as policy_loss(weights=)
    per_token = -adv[:, None] * torch.exp(lp - old).clamp(0.8, 1.2)  # (A > 0 rows clip high, A < 0 low)
    want = ((torch.maximum(-adv[:, None] * torch.exp(lp - old), per_token) * theirs) * mask).sum() / mask.sum()
    close(policy_loss(lp, old, adv, mask, agg="token_mean", weights=ours), want)


def test_flags_an_algorithm_would_ignore_are_refused_and_old_runs_keep_their_std():
    from understand_r1_zero.config import from_flags

    for kw, msg in ((dict(algo="gvpo", tis_cap=2.0), "takes no per-token weights"),
                    (dict(algo="cispo", clip_ratio_c=3.0), "has no dual clip"),
                    (dict(algo="mvar", scale_rewards="none"), "--scale_rewards is not a flag of --algo mvar"),
                    (dict(algo="gfpo", num_samples=3), "keeps 1 response"),
                    (dict(algo="gvpo", num_samples=1), "--num_samples must be >= 2")):
        with pytest.raises(ValueError, match=msg):
            from_flags(**kw)
    from_flags(algo="gspo", tis_cap=2.0, clip_ratio_c=3.0)  # gspo's loss is PPO-clip: both apply
    # an MVaR run saved before --mvar_std_of existed ran with the advantage std: resuming it under
    # the new default (score) is a different run
    cfg = from_flags(algo="mvar")
    stored = {k: v for k, v in cfg.to_dict().items() if k != "mvar_std_of"}
    assert cfg.run_diff(stored) == ["--mvar_std_of 'advantage' -> 'score'"]
    assert from_flags(algo="mvar", mvar_std_of="advantage").run_diff(stored) == []


def test_gvpo_reweights_before_every_update_at_the_current_policy():
    """Learner._reweight: the first update of a multi-update step uses the pre-step logprobs; a
    later one recomputes them at the current policy, so with --gvpo_anchor old the implicit reward
    (current vs rollout policy) acts from the second update on."""
    from types import SimpleNamespace

    from understand_r1_zero.config import from_flags
    from understand_r1_zero.learner import Learner

    cfg = from_flags(algo="gvpo", num_samples=2, rollout_batch_size=1, gvpo_anchor="old", gvpo_beta=1.0)
    old = [torch.tensor([-1.0, -1.0]), torch.tensor([-2.0])]  # pre-step: summed -2, -2
    now = [torch.tensor([-0.5, -0.5]), torch.tensor([-2.0])]  # after an update: summed -1, -2
    calls = []
    stub = SimpleNamespace(algo=get_algorithm("gvpo"), cfg=cfg, engine=SimpleNamespace(module=None),
                           logprobs=lambda model, samples, size: calls.append(1) or now)
    centred = torch.tensor([0.5, -0.5])
    first = Learner._reweight(stub, centred, [None, None], old, None, first=True)
    close(first, centred)  # r = 0 against itself
    assert calls == []  # the pre-step logprobs are reused, no extra forward
    later = Learner._reweight(stub, centred, [None, None], old, None, first=False)
    # r = beta * (now - old) = [1, 0], centred [0.5, -0.5]: w = c - (r - mean r) = [0, 0]
    close(later, [0.0, 0.0])
    assert calls == [1]
