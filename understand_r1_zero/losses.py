"""Advantages, the clipped surrogate, aggregations, KL, and the ``ALGORITHMS`` registry.

Everything here is a pure tensor function: tensors and scalars in, tensors out, no config.
Shapes: rewards ``[P, G]`` (P prompts x G samples each); logprobs, old_logprobs, ref_logprobs
and mask ``[N, T]`` (N = P*G responses, T response positions, mask 1 on response tokens);
sequence advantages ``[N]`` (``adv.flatten()`` of the ``[P, G]`` advantages, prompt-major).

An algorithm is its whole objective (advantage function, loss, aggregation, clip range, what it
needs from the loop), one ``Algorithm`` entry registered by name: see ``ALGORITHMS`` at the end.
A new loss is one function with ``policy_loss``'s signature plus one ``register_algorithm`` line.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import torch

AGGS = ("seq_mean_token_mean", "seq_mean_token_sum_norm", "token_mean")


def _check_rewards(rewards: torch.Tensor) -> torch.Tensor:
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [P, G], got shape {tuple(rewards.shape)}")
    if not torch.isfinite(rewards).all():
        bad = (~torch.isfinite(rewards)).nonzero().tolist()
        raise ValueError(f"non-finite rewards at [prompt, sample] {bad[:8]}: fix the grader, "
                         "a NaN here silently poisons every advantage in its group")
    return rewards if rewards.is_floating_point() else rewards.float()


# ---------------------------------------------------------------- group advantages

SCALES = ("group", "batch", "none")


def group_advantages(rewards: torch.Tensor, *, scale_by_std: bool | None = None, scale: str | None = None,
                     eps: float = 1e-6) -> torch.Tensor:
    """Group-relative advantages, one per response.

    GRPO (Shao et al. 2024, arXiv 2402.03300, Sec. 4.1.2):  A_i = (r_i - mean(r)) / (std(r) + eps)
    Dr. GRPO (Liu et al. 2025, arXiv 2503.20783, Sec. 3.1): A_i =  r_i - mean(r)
    Dr. GRPO's "remove difficulty bias" is ``scale_by_std=False``: dividing by the group std
    up-weights questions that are nearly always solved or nearly always failed.

    ``scale`` (TRL's ``scale_rewards``; ``--scale_rewards``) names the std: "group" (the group's,
    = ``scale_by_std=True``), "batch" (of every reward in ``rewards``: this process's batch; one
    process holds the global batch), "none" (= ``scale_by_std=False``).

    std is the unbiased std (as ``torch.std`` and TRL / verl). A group of one sample or a
    constant group gets advantage 0, never NaN. Non-finite rewards raise ValueError.
    """
    rewards = _check_rewards(rewards)  # [P, G]
    if scale is None:
        scale = "group" if scale_by_std else "none"
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid: {SCALES}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)  # [P, G]
    if scale == "none":
        return centred
    if scale == "batch":
        return centred / (rewards.std() + eps) if rewards.numel() > 1 else centred
    if rewards.shape[1] < 2:  # torch.std of one element is NaN; centred is already 0
        return centred
    std = rewards.std(dim=1, keepdim=True)  # [P, 1]
    return centred / (std + eps)  # [P, G]


def grpo_advantages(rewards: torch.Tensor, *, scale: str = "group", eps: float = 1e-6) -> torch.Tensor:
    return group_advantages(rewards, scale=scale, eps=eps)


def gfpo_advantages(rewards: torch.Tensor, *, lengths: torch.Tensor, keep: int = 0, metric: str = "length",
                    scale: str = "group", eps: float = 1e-6) -> torch.Tensor:
    """GFPO (Shrivastava et al. 2025, arXiv 2508.09726, Eq. 2): of each group's G responses keep
    the ``keep`` best by ``metric`` ("length": the shortest; "reward_per_token": the highest
    r_i / |o_i|), compute the group advantages over the kept subset S only, and give the rest 0:

        A_i = (r_i - mean_S(r)) / (std_S(r) + eps) * 1[i in S]

    ``lengths`` [P, G] are the response lengths in tokens. Ties go to the earlier sample (a
    stable sort), so the filter is deterministic. ``keep`` 0 keeps half of G (the paper samples
    more and keeps k, e.g. 8 of 16); ``keep >= G`` is plain GRPO. KNOWN GAP: the registry
    entry aggregates over all G responses (the rejected ones add 0), a k/G scale against a
    normaliser over the kept subset only; the learning rate absorbs it.
    """
    rewards = _check_rewards(rewards)  # [P, G]
    if metric not in ("length", "reward_per_token"):
        raise ValueError(f"unknown GFPO metric {metric!r}; valid: ('length', 'reward_per_token')")
    lengths = lengths.to(rewards.dtype).reshape(rewards.shape)  # [P, G]
    key = lengths if metric == "length" else -rewards / lengths.clamp(min=1)  # ascending = better
    k = max(1, min(int(keep) or rewards.shape[1] // 2, rewards.shape[1]))
    order = torch.sort(key, dim=1, stable=True).indices[:, :k]  # [P, k]
    kept = torch.zeros_like(rewards, dtype=torch.bool).scatter_(1, order, True)  # [P, G]
    sub = torch.gather(rewards, 1, order)  # [P, k]
    adv_sub = group_advantages(sub, scale=scale, eps=eps)  # [P, k]
    return torch.zeros_like(rewards).scatter_(1, order, adv_sub) * kept  # [P, G]


def overlong_penalty(lengths: torch.Tensor, *, max_len: int, buffer: int) -> torch.Tensor:
    """DAPO's soft overlong punishment (Yu et al. 2025, arXiv 2503.14476, Eq. 13), added to the
    reward of a response of |y| tokens with L_max = ``max_len``, L_cache = ``buffer``:

        0                                  |y| <= L_max - L_cache
        ((L_max - L_cache) - |y|) / L_cache    L_max - L_cache < |y| <= L_max
        -1                                 |y| > L_max

    ``buffer`` 0 is off (all zeros)."""
    lengths = lengths.to(torch.float32)
    if buffer <= 0:
        return torch.zeros_like(lengths)
    soft = ((max_len - buffer) - lengths) / buffer
    return torch.where(lengths <= max_len - buffer, torch.zeros_like(lengths),
                       torch.where(lengths <= max_len, soft, -torch.ones_like(lengths)))


def drgrpo_advantages(rewards: torch.Tensor, *, scale: str = "none", eps: float = 1e-6) -> torch.Tensor:
    """Dr. GRPO modification 2 ("remove difficulty bias"): no std division.

    Modification 1 ("remove length bias") lives in the aggregation: ``seq_mean_token_sum_norm``.
    TRL's ``loss_type="dr_grpo"`` only changes the aggregation; it keeps std scaling unless you
    also set ``scale_rewards="none"``. Ours is the paper's Dr. GRPO: both modifications.
    """
    return group_advantages(rewards, scale=scale, eps=eps)


# ---------------------------------------------------------------- aggregation

def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    # where() rather than x * mask: an inf at a padded position times 0 would give NaN.
    x = torch.where(mask.bool(), x, torch.zeros((), dtype=x.dtype, device=x.device))
    return x.sum() if dim is None else x.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    n = mask.to(x.dtype).sum() if dim is None else mask.to(x.dtype).sum(dim)
    return masked_sum(x, mask, dim) / n.clamp(min=1)


def aggregate(values: torch.Tensor, mask: torch.Tensor, agg: str, max_len: int | None = None,
              num_seqs: int | None = None, num_tokens: int | None = None) -> torch.Tensor:
    """Reduce token values ``[N, T]`` to a scalar loss.

    seq_mean_token_mean      (GRPO)     sum_i [ sum_t v_it / |o_i| ] / num_seqs
    seq_mean_token_sum_norm  (Dr. GRPO) sum_i [ sum_t v_it / max_len ] / num_seqs
    token_mean               (DAPO, BNPO; verl's default "token-mean")  sum_it v_it / num_tokens

    ``num_seqs`` / ``num_tokens`` are the GLOBAL counts of sequences / response tokens in the whole
    optimisation batch (all micro-batches, all ranks); when None the local counts are used. Each
    normaliser is either local to one sequence (|o_i|), a constant (max_len), or global, so the sum
    of the per-micro-batch losses is exactly the full-batch loss, and so is the sum of the ranks'
    gradients. DDP and DeepSpeed AVERAGE gradients over ranks (and DeepSpeed's ``backward`` also
    divides by gradient_accumulation_steps): the caller undoes those factors, not this function.

    A sequence with no response tokens contributes 0 (its |o_i| is clamped to 1) and still counts
    in num_seqs, as in TRL. ``max_len`` is Dr. GRPO's constant (the generation budget), never the
    batch's longest row: that would bring the length dependence back.
    """
    mask = mask.to(values.dtype)  # [N, T]
    if agg == "seq_mean_token_mean":
        per_seq = masked_sum(values, mask, -1) / mask.sum(-1).clamp(min=1)  # [N]
        return per_seq.sum() / (values.shape[0] if num_seqs is None else num_seqs)
    if agg == "seq_mean_token_sum_norm":
        if max_len is None:
            raise ValueError("seq_mean_token_sum_norm needs max_len (the generation budget)")
        per_seq = masked_sum(values, mask, -1) / max_len  # [N]
        return per_seq.sum() / (values.shape[0] if num_seqs is None else num_seqs)
    if agg == "token_mean":
        n = mask.sum().clamp(min=1) if num_tokens is None else num_tokens
        return masked_sum(values, mask) / n
    raise ValueError(f"unknown agg {agg!r}; valid: {AGGS}")


# ---------------------------------------------------------------- policy loss and KL

def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, *, clip_low: float = 0.2, clip_high: float = 0.2,
                agg: str = "seq_mean_token_mean", max_len: int | None = None,
                num_seqs: int | None = None, num_tokens: int | None = None,
                ratio_level: str = "token", clip_ratio_c: float = 0.0,
                weights: torch.Tensor | None = None, return_stats: bool = False):
    """PPO-clip surrogate (Schulman et al. 2017, arXiv 1707.06347, Eq. 7), per token, negated:

        l_it = max( -A_i * rho_it,  -A_i * clip(rho_it, 1 - clip_low, 1 + clip_high) )
        rho_it = exp(logprobs_it - old_logprobs_it)

    then reduced with ``aggregate`` (see there for the normalisers). Decoupled clip_low /
    clip_high is DAPO's "clip-higher" (Yu et al. 2025, arXiv 2503.14476, Sec. 3.1).

    ``ratio_level="sequence"`` is GSPO's ratio (Zheng et al. 2025, arXiv 2507.18071, Eq. 7), one
    per response, length-normalised, used at every token of it:

        s_i = (pi(o_i) / pi_old(o_i))^(1/|o_i|) = exp( mean_t (logprobs_it - old_logprobs_it) )

    ``clip_ratio_c`` > 1 is dual-clip (Ye et al. 2020, arXiv 1912.09729; verl's ``clip_ratio_c``):
    for A_i < 0 the loss is also capped at -A_i * clip_ratio_c, so a huge ratio on a bad token
    cannot make the loss unbounded. 0 = off.

    ``weights`` [N, T] (detached) multiply the per-token loss before aggregation: the sampler-
    learner mismatch correction (``mismatch_weights``).
    With ``return_stats`` also returns a dict of detached local token means for logging:
    clip_frac, clip_frac_low (A<0, rho<1-clip_low), clip_frac_high (A>0, rho>1+clip_high),
    ratio_mean, ratio_max.
    """
    if advantages.shape != logprobs.shape[:1]:
        raise ValueError(f"advantages must be [N] = {tuple(logprobs.shape[:1])}, got "
                         f"{tuple(advantages.shape)}: flatten the [P, G] advantages")
    valid = mask.bool()  # [N, T]
    # Padded positions may hold garbage logprobs; zero the log-ratio there so exp() cannot
    # overflow into inf*0 = NaN in the forward or the backward pass.
    log_ratio = torch.where(valid, logprobs - old_logprobs, torch.zeros_like(logprobs))  # [N, T]
    if ratio_level == "sequence":
        seq = log_ratio.sum(-1) / valid.sum(-1).clamp(min=1)  # [N]: mean over the response's tokens
        log_ratio = torch.where(valid, seq.unsqueeze(-1).expand_as(log_ratio), torch.zeros_like(log_ratio))
    elif ratio_level != "token":
        raise ValueError(f"unknown ratio_level {ratio_level!r}; valid: ('token', 'sequence')")
    ratio = torch.exp(log_ratio)  # [N, T]
    adv = advantages.to(ratio.dtype).unsqueeze(-1)  # [N, 1]
    unclipped = -adv * ratio  # [N, T]
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)  # [N, T]
    per_token = torch.maximum(unclipped, clipped)  # [N, T]
    if clip_ratio_c:
        if clip_ratio_c <= 1:
            raise ValueError(f"clip_ratio_c must be > 1 (or 0 = off), got {clip_ratio_c}")
        per_token = torch.where(adv < 0, torch.minimum(per_token, -adv * clip_ratio_c), per_token)
    if weights is not None:
        per_token = per_token * weights.detach()
    loss = aggregate(per_token, mask, agg, max_len, num_seqs, num_tokens)
    if not return_stats:
        return loss
    with torch.no_grad():
        low = (adv < 0) & (ratio < 1.0 - clip_low) & valid  # [N, T]
        high = (adv > 0) & (ratio > 1.0 + clip_high) & valid  # [N, T]
        stats = {
            "clip_frac": masked_mean((low | high).to(ratio.dtype), valid),
            "clip_frac_low": masked_mean(low.to(ratio.dtype), valid),
            "clip_frac_high": masked_mean(high.to(ratio.dtype), valid),
            "ratio_mean": masked_mean(ratio, valid),
            "ratio_max": torch.where(valid, ratio, torch.zeros_like(ratio)).max(),
        }
    return loss, stats


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Token-wise estimators of KL(pi_theta || pi_ref) on samples from pi_theta
    (Schulman 2020, "Approximating KL Divergence", http://joschu.net/blog/kl-approx.html):

        d = ref_logprobs - logprobs   (log r, r = pi_ref / pi_theta)
        k1 = -d            unbiased, high variance, can be negative
        k2 = d^2 / 2       biased, low variance
        k3 = exp(d) - d - 1   unbiased, low variance, >= 0 (GRPO's Eq. 4; verl's "low_var_kl")

    Add to the loss as ``beta * aggregate(kl, mask, agg, ...)`` with the policy loss's aggregation.
    Padded positions must hold finite logprobs (k3's exp). verl additionally clamps k3 to
    [-10, 10]; we do not, so a runaway KL stays visible in the logs.
    """
    d = ref_logprobs - logprobs  # [N, T]
    if kind == "k1":
        return -d
    if kind == "k2":
        return 0.5 * d.square()
    if kind == "k3":
        return torch.exp(d) - d - 1.0
    raise ValueError(f"unknown KL estimator {kind!r}; valid: ('k1', 'k2', 'k3')")


def mismatch_weights(old_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor, *,
                     cap: float, level: str = "token", mode: str = "truncate") -> torch.Tensor:
    """Sampler-learner mismatch correction (Yao et al. 2025, "Your efficient RL framework secretly
    brings you off-policy RL training"; oat's ``--tis_c``, TRL's ``vllm_importance_sampling_*``,
    verl's ``rollout_correction``): the rollouts come from the sampler pi_s (vLLM, other kernels,
    bf16), the loss assumes pi_old, so each token's loss is re-weighted by

        token:    w_it = pi_old(o_it) / pi_s(o_it) = exp(old_it - sampler_it)
        sequence: w_i  = prod_t w_it = exp(sum_t (old_it - sampler_it)), at every token of o_i
        truncate (TIS): min(w, C)        mask (MIS): w * 1[w <= C]

    with C = ``cap``; detached, [N, T], 0 at masked positions. ``sampler_logprobs`` must be those
    of the distribution sampled from (after temperature and top-p), as the actors return them.
    """
    if cap <= 0:
        raise ValueError(f"the mismatch cap must be > 0, got {cap}")
    if level not in ("token", "sequence") or mode not in ("truncate", "mask"):
        raise ValueError(f"unknown level {level!r} / mode {mode!r}; valid: token|sequence, truncate|mask")
    valid = mask.bool()
    with torch.no_grad():
        log_w = torch.where(valid, old_logprobs.float() - sampler_logprobs.float(), 0.0)  # [N, T]
        if level == "sequence":
            log_w = torch.where(valid, log_w.sum(-1, keepdim=True).expand_as(log_w), 0.0)
        log_cap = math.log(cap)
        if mode == "truncate":
            w = torch.exp(log_w.clamp(max=log_cap))
        else:
            w = torch.where(log_w <= log_cap, torch.exp(log_w.clamp(max=log_cap)), 0.0)
    return torch.where(valid, w, 0.0).to(old_logprobs.dtype)


def gspo_loss(logprobs, old_logprobs, advantages, mask, *, clip_ratio_c: float = 0.0,
              weights: torch.Tensor | None = None, **kw):
    """GSPO (Zheng et al. 2025, arXiv 2507.18071, Eq. 5): the clipped surrogate on the sequence
    ratio s_i (``policy_loss(ratio_level="sequence")``), averaged over responses (the registry
    entry's aggregation ``seq_mean_token_mean`` gives 1/G sum_i). With one update per rollout
    batch s_i = 1 and the gradient is GRPO's with sequence-averaged token gradients; the paper
    takes several updates per batch (``--train_batch_size`` < the rollout batch), where clipping
    at its 3e-4 / 4e-4 acts."""
    return policy_loss(logprobs, old_logprobs, advantages, mask, ratio_level="sequence", clip_ratio_c=clip_ratio_c,
                       weights=weights, **kw)


def cispo_loss(logprobs, old_logprobs, advantages, mask, *, clip_low: float = 1.0, clip_high: float = 0.28,
               agg: str = "token_mean", max_len=None, num_seqs=None, num_tokens=None,
               weights: torch.Tensor | None = None, return_stats: bool = False, **_):
    """CISPO (MiniMax-M1, arXiv 2506.13585, Eq. 4): REINFORCE with a clipped, detached IS weight,
    so no token's gradient is dropped (PPO-clip zeroes the clipped ones):

        l_it = -sg( clip(rho_it, 1 - clip_low, 1 + clip_high) ) * A_i * logprobs_it

    reduced with ``aggregate`` (the paper: token mean). The paper imposes no lower bound
    (clip_low = 1: the weight may go to 0) and tunes only the upper one; 0.28 is DAPO's
    clip-higher, our default (``--clip_high``)."""
    valid = mask.bool()  # [N, T]
    log_ratio = torch.where(valid, logprobs - old_logprobs, torch.zeros_like(logprobs))  # [N, T]
    ratio = torch.exp(log_ratio).detach()  # [N, T]
    weight = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)  # [N, T], no gradient
    lp = torch.where(valid, logprobs, torch.zeros_like(logprobs))
    per_token = -weight * advantages.to(lp.dtype).unsqueeze(-1) * lp  # [N, T]
    if weights is not None:  # the mismatch correction, on top of CISPO's own weight
        per_token = per_token * weights.detach()
    loss = aggregate(per_token, mask, agg, max_len, num_seqs, num_tokens)
    if not return_stats:
        return loss
    with torch.no_grad():
        clipped = ((ratio < 1.0 - clip_low) | (ratio > 1.0 + clip_high)) & valid
        stats = {"clip_frac": masked_mean(clipped.to(ratio.dtype), valid), "ratio_mean": masked_mean(ratio, valid),
                 "ratio_max": torch.where(valid, ratio, torch.zeros_like(ratio)).max()}
    return loss, stats


def gvpo_weights(centred: torch.Tensor, seq_logprobs: torch.Tensor, seq_anchor: torch.Tensor, *, beta: float,
                 group_size: int, **_) -> torch.Tensor:
    """GVPO's gradient weights (Zhang et al. 2025, arXiv 2504.19599, Eq. 10), one per response [N]:

        w_i = (R_i - mean_g R) - (r_i - mean_g r),    r_i = beta * (log pi_theta(y_i) - log pi_anchor(y_i))

    ``centred`` = R_i - mean_g R (Dr. GRPO's advantages), ``seq_logprobs`` / ``seq_anchor`` the
    responses' summed token logprobs under the current policy and the anchor, groups of
    ``group_size`` consecutive responses. Zero-sum within each group, so the intractable
    partition function of the KL-regularised optimum cancels; no importance ratio is needed."""
    N = centred.shape[0]
    if N % group_size:
        raise ValueError(f"{N} responses are not whole groups of {group_size}")
    r = beta * (seq_logprobs - seq_anchor).to(centred.dtype).view(-1, group_size)  # [P, G]
    return (centred.view(-1, group_size) - (r - r.mean(1, keepdim=True))).reshape(N)  # [N]


def gvpo_loss(logprobs, old_logprobs, advantages, mask, *, beta: float = 0.1, group_size: int = 2,
              num_seqs=None, return_stats: bool = False, **_):
    """GVPO's loss (arXiv 2504.19599, Eq. 11 / the released verl recipe's MSE form): with the
    weights w_i of ``gvpo_weights`` as ``advantages``,

        L = -beta / (G - 1) * sum_i w_i * sum_t logprobs_it      (per group; a mean over groups)

    whose gradient equals that of sum_i 0.5 * ((r_i - mean r) - (R_i - mean R))^2 / (G - 1) at the
    current policy (tests/test_algorithms.py checks it by autograd). No ratio, no clipping: the
    clip range and the aggregation of the registry entry are unused. ``num_seqs`` is the global
    response count, so micro-batches and ranks add up to the batch's loss."""
    valid = mask.bool()
    per_seq = torch.where(valid, logprobs, torch.zeros_like(logprobs)).sum(-1)  # [N]
    n = per_seq.shape[0] if num_seqs is None else num_seqs
    groups = n / group_size
    loss = -(beta / (group_size - 1)) * (advantages.to(per_seq.dtype) * per_seq).sum() / groups
    if not return_stats:
        return loss
    return loss, {"clip_frac": torch.zeros(())}


# ---------------------------------------------------------------- RiskPO: Mixed Value-at-Risk

def mvar_paper_scores(rewards: torch.Tensor, bundle_size: int) -> list[torch.Tensor]:
    """RiskPO's bundle scores: consecutive prompts form bundles of ``bundle_size`` (the last may
    be smaller); paper k of a bundle is the k-th sample of each of its questions, and its score
    s_k is the sum of those rewards. Returns one ``[G]`` tensor per bundle (the tracker's input).
    """
    rewards = _check_rewards(rewards)  # [P, G]
    if bundle_size < 1:
        raise ValueError(f"bundle_size must be >= 1, got {bundle_size}")
    return [rewards[i:i + bundle_size].sum(0) for i in range(0, rewards.shape[0], bundle_size)]


def mvar_advantages(rewards: torch.Tensor, *, bundle_size: int, alpha: float = 0.2,
                    beta: float = 0.9, w_mix: float = 1.5, credit: str = "std",
                    q_mode: str = "track", tracked: tuple[float, float] | None = None,
                    natural_baseline: bool = True, std_norm: bool = True,
                    std_of: str = "score", eps: float = 1e-6) -> torch.Tensor:
    """RiskPO's Mixed Value-at-Risk advantages (Ren et al. 2025, arXiv 2510.00911), ``[P, G]``.

    Per bundle, with paper scores s (see ``mvar_paper_scores``) and quantiles a (level alpha),
    b (level beta), the MVaR = (w * CVaR_alpha + RVaR_[alpha,beta]) / (w + 1) gradient weights are

        R = [ (s - a)^+ - (s - b)^+ + (a - b) ] / (beta - alpha + eps)   (RVaR; a - b: natural baseline)
        C = -(a - s)^+ / (alpha + eps)                                    (CVaR, the lower tail)
        A_paper = (w * C + R) / (w + 1)

    Quantiles (``q_mode``): "batch": a, b = torch.quantile (linear interpolation) of this
    bundle's G paper scores. "track": a, b = ``tracked`` from a ``QuantileTracker`` over previous
    steps (batch values when ``tracked`` is None, i.e. the first step). "mix": their average.
    KNOWN GAP: the released code (github.com/RTkenny/RiskPO, ray_trainer.py) writes its tracked
    quantiles into ``batch.meta_info`` only after ``compute_advantage`` has run on that batch, so
    the advantage never sees them and its reported runs used per-bundle batch quantiles. We follow
    the paper by default (``q_mode="track"``); ``q_mode="batch"`` reproduces the released code.
    Tracked quantiles are one pair for all bundles; a smaller last bundle has a different score
    scale, so keep P a multiple of bundle_size when tracking.

    ``std_norm`` divides A_paper by (unbiased std over the bundle's papers + eps); the std is 1
    for a single paper. ``std_of="score"`` (default: the released code, its core_algos.py per-
    bundle std) takes the std of the paper scores s; ``std_of="advantage"`` (this library's
    earlier default) the std of the A_paper values: they differ by x0.65-2.09 per bundle.
    ``natural_baseline=False`` drops the (a - b) term (the release's dapomath script,
    ``natural_baseline_adv=False``). Either std is replaced by 1 when it is <= 1e-3 (our guard, not
    in the released code: with tracked quantiles a constant bundle has a constant non-zero
    advantage, which eps alone would blow up by 1e6; batch quantiles give it 0 anyway).

    Credit to response (question q, sample k) of paper k (``credit``), as the released code:
      uniform:  A_paper[k]
      std:      A_paper[k] / (std_q + eps), std_q = unbiased std of question q's G rewards,
                1.0 where std_q <= 1e-3 (or G = 1)
      score:    A_paper[k] * (0.5 if r_qk > 0 else 1.5)
      sum-mean: A_paper[k] * (r_qk - mu_q) / sum_q' (r_q'k - mu_q'), or A_paper[k] / Q (Q questions
                in the bundle) where |that sum| <= 1e-6
    """
    rewards = _check_rewards(rewards)  # [P, G]
    if q_mode not in ("batch", "track", "mix"):
        raise ValueError(f"unknown q_mode {q_mode!r}; valid: ('batch', 'track', 'mix')")
    if credit not in ("uniform", "std", "score", "sum-mean"):
        raise ValueError(f"unknown credit {credit!r}; valid: ('uniform', 'std', 'score', 'sum-mean')")
    if std_of not in ("advantage", "score"):
        raise ValueError(f"unknown std_of {std_of!r}; valid: ('advantage', 'score')")
    if tracked is not None and any(v is None for v in tracked):
        tracked = None
    G = rewards.shape[1]
    levels = torch.tensor([alpha, beta], dtype=rewards.dtype, device=rewards.device)
    out = []
    for s, r in zip(mvar_paper_scores(rewards, bundle_size), rewards.split(bundle_size)):
        # s: [G] paper scores; r: [Q, G] this bundle's rewards
        a, b = torch.quantile(s, levels).unbind()  # batch quantiles, scalars
        if q_mode == "track" and tracked is not None:
            a, b = (torch.as_tensor(v, dtype=s.dtype, device=s.device) for v in tracked)
        elif q_mode == "mix" and tracked is not None:
            a, b = (a + tracked[0]) / 2, (b + tracked[1]) / 2
        rvar = (s - a).clamp(min=0) - (s - b).clamp(min=0)  # [G]
        if natural_baseline:
            rvar = rvar + (a - b)
        rvar = rvar / (beta - alpha + eps)  # [G]
        cvar = -(a - s).clamp(min=0) / (alpha + eps)  # [G]
        adv = (w_mix * cvar + rvar) / (w_mix + 1)  # [G]
        if std_norm:
            std = (adv if std_of == "advantage" else s).std() if G > 1 else adv.new_tensor(1.0)
            adv = adv / (torch.where(std > 1e-3, std, torch.ones_like(std)) + eps)  # [G]
        if credit == "uniform":
            out.append(adv.expand_as(r))  # [Q, G]
        elif credit == "std":
            std_q = r.std(dim=1, keepdim=True) if G > 1 else torch.zeros_like(r[:, :1])  # [Q, 1]
            std_q = torch.where(std_q > 1e-3, std_q, torch.ones_like(std_q))
            out.append(adv / (std_q + eps))  # [Q, G]
        elif credit == "score":
            out.append(adv * torch.where(r > 0, 0.5, 1.5))  # [Q, G]
        else:  # sum-mean
            dev = r - r.mean(dim=1, keepdim=True)  # [Q, G]
            total = dev.sum(0)  # [G]
            ok = total.abs() > 1e-6  # [G]
            share = torch.where(ok, dev / torch.where(ok, total, 1.0), 1.0 / r.shape[0])  # [Q, G]
            out.append(adv * share)  # [Q, G]
    return torch.cat(out, dim=0)  # [P, G]


class QuantileTracker:
    """Running quantile estimates of the paper scores (RiskPO, arXiv 2510.00911), by the
    stochastic-approximation update of the released code (SGD on the pinball loss):

        first update:  q_l = torch.quantile(scores, l)
        later updates: q_l <- q_l + lr * (l - mean(scores < q_l))     (strict "<")

    ``scores`` are all bundles' paper scores pooled (a list from ``mvar_paper_scores`` is fine).
    Per step: read ``tracked(alpha, beta)`` (None before the first update) for
    ``mvar_advantages``, THEN ``update`` with this step's scores. Its state goes into checkpoints.
    """

    def __init__(self, levels: Sequence[float], lr: float):
        self.levels = [float(x) for x in levels]
        self.lr = float(lr)
        self.q: list[float] | None = None

    def update(self, scores) -> None:
        if isinstance(scores, (list, tuple)):
            scores = torch.cat([torch.as_tensor(x).reshape(-1) for x in scores])
        scores = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)  # [M]
        levels = torch.tensor(self.levels, dtype=torch.float64)  # [L]
        if self.q is None:
            self.q = torch.quantile(scores, levels).tolist()
            return
        q = torch.tensor(self.q, dtype=torch.float64)  # [L]
        below = (scores.unsqueeze(0) < q.unsqueeze(1)).double().mean(1)  # [L]
        self.q = (q + self.lr * (levels - below)).tolist()

    def value(self, level: float) -> float | None:
        for lv, q in zip(self.levels, self.q or [None] * len(self.levels)):
            if math.isclose(lv, level, abs_tol=1e-9):
                return q
        raise ValueError(f"level {level} is not tracked; tracked levels: {self.levels}")

    def tracked(self, alpha: float, beta: float) -> tuple[float, float] | None:
        """(q_alpha, q_beta) for ``mvar_advantages(tracked=...)``, or None before the first update."""
        return None if self.q is None else (self.value(alpha), self.value(beta))

    def state_dict(self) -> dict:
        return {"levels": list(self.levels), "lr": self.lr, "q": None if self.q is None else list(self.q)}

    def load_state_dict(self, state: Mapping) -> None:
        if [float(x) for x in state["levels"]] != self.levels:
            raise ValueError(f"checkpoint tracks levels {state['levels']}, this tracker {self.levels}")
        self.lr = float(state["lr"])
        self.q = None if state["q"] is None else [float(x) for x in state["q"]]


# ---------------------------------------------------------------- MVaR's loop state

class MVaRTracker:
    """What MVaR carries from step to step (``Algorithm.tracker``): a ``QuantileTracker`` of the
    paper scores at levels (alpha, beta), read before each step's advantages and updated after
    with every rank's scores. The loop calls, per step::

        adv = algo.advantages(R, **options, **tracker.advantage_kwargs())
        metrics = tracker.update(all_gather(tracker.scores(R)))   # identical on every rank
    """

    def __init__(self, *, alpha: float, beta: float, q_lr: float, bundle_size: int, **_):
        self.alpha, self.beta, self.bundle_size = alpha, beta, bundle_size
        self.quantiles = QuantileTracker([alpha, beta], q_lr)
        self._used = None

    def advantage_kwargs(self) -> dict:
        self._used = self.quantiles.tracked(self.alpha, self.beta)  # None before the first update
        return {"tracked": self._used}

    def scores(self, rewards: torch.Tensor) -> torch.Tensor:
        return torch.cat(mvar_paper_scores(rewards, self.bundle_size))  # [P / bundle_size * G]

    def update(self, pooled: torch.Tensor) -> dict:
        """Update with all ranks' scores; returns what the tracker did: the quantiles this step's
        advantages used, the batch's own, and the tracked ones after the update."""
        self.quantiles.update(pooled)
        out = {}
        for i, (name, level) in enumerate((("alpha", self.alpha), ("beta", self.beta))):
            out[f"mvar/q_{name}_used"] = self._used[i] if self._used else float("nan")
            out[f"mvar/q_{name}_batch"] = torch.quantile(pooled.double(), level).item()
            out[f"mvar/q_{name}_tracked"] = self.quantiles.value(level)
        out["mvar/score_mean"] = pooled.double().mean().item()
        return out

    def state_dict(self) -> dict:
        return self.quantiles.state_dict()

    def load_state_dict(self, state: Mapping) -> None:
        self.quantiles.load_state_dict(state)


# ---------------------------------------------------------------- registry

@dataclass(frozen=True)
class Algorithm:
    """An algorithm is the whole objective, in one entry; the loop and the learner act on these
    fields, never on the name.

    * ``advantage_fn(rewards [P, G], **options) -> [P, G]``: the advantages.
    * ``loss_fn``: the loss of one micro-batch, with ``policy_loss``'s signature (the default:
      PPO-clip on the token ratio). A sequence-level ratio, or anything else, is a function of
      its own with that signature.
    * ``agg``: the aggregation ``loss_fn`` (and the KL term) reduce with, see ``aggregate``.
    * ``clip_low`` / ``clip_high``: the clip range (``--clip_low`` / ``--clip_high`` override).
    * ``defaults``: option defaults; ``flags``: option -> ``TrainConfig`` field, the one mapping
      through which algorithm-specific flags reach it (``options(cfg)``). ``advantage_fn`` gets
      the options among its parameters; ``tracker`` gets them all.
    * what it needs from the loop: ``tracker``, a factory ``tracker(**options)`` of the state
      carried across steps (see ``MVaRTracker``; checkpointed); ``sampler_logprobs``: ``loss_fn``
      also gets ``sampler_logprobs=`` [B, T], the actor's logprobs of the sampled tokens;
      ``ref_model``: a frozen reference model is loaded (even at ``--beta 0``) and ``loss_fn``
      gets ``ref_logprobs=`` [B, T]. ``prompts_multiple_of``: an option each rank's prompt count
      must be a multiple of (MVaR's bundles). ``inputs``: what else ``advantage_fn`` takes from
      the loop: ``"lengths"`` ([P, G] response lengths, GFPO). ``shape_rewards(rewards [N],
      lengths [N], *, max_len, **options) -> [N]``: reward shaping after grading (DAPO's
      overlong punishment). ``reweight(advantages [N], seq_logprobs [N], seq_anchor [N],
      **options) -> [N]``: the learner recomputes the advantages from the current policy's and
      an anchor's summed response logprobs before updating (GVPO; option ``anchor``: "ref", the
      reference model, or "old", the policy itself). ``loss_fn`` gets the options among its
      parameters too.
    * ``paper``: the citation ``--help`` prints.
    """
    name: str
    advantage_fn: Callable[..., torch.Tensor]
    agg: str
    loss_fn: Callable[..., Any] = policy_loss
    clip_low: float = 0.2
    clip_high: float = 0.2
    defaults: Mapping[str, Any] = field(default_factory=dict)
    flags: Mapping[str, str] = field(default_factory=dict)
    tracker: Callable[..., Any] | None = None
    sampler_logprobs: bool = False
    ref_model: bool = False
    prompts_multiple_of: str | None = None
    inputs: tuple = ()
    shape_rewards: Callable[..., torch.Tensor] | None = None
    reweight: Callable[..., torch.Tensor] | None = None
    paper: str = ""

    def __post_init__(self):
        if self.agg not in AGGS:
            raise ValueError(f"{self.name}: unknown agg {self.agg!r}; valid: {AGGS}")
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "flags", MappingProxyType(dict(self.flags)))
        for need, arg in ((self.sampler_logprobs, "sampler_logprobs"), (self.ref_model, "ref_logprobs")):
            if need and not self.loss_takes(arg):
                raise ValueError(f"{self.name}: asks the loop for {arg} but its loss_fn "
                                 f"{getattr(self.loss_fn, '__name__', self.loss_fn)} has no {arg}= parameter")

    def loss_takes(self, arg: str, *, explicit: bool = False) -> bool:
        """Whether ``loss_fn`` has a parameter ``arg`` (or, unless ``explicit``, takes ``**kwargs``)."""
        params = inspect.signature(self.loss_fn).parameters
        return arg in params or not explicit and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())

    def options(self, cfg) -> dict:
        """``defaults`` updated with the config's flags (``flags``); a flag left at "" or -1 means
        "the algorithm's default" and is not passed."""
        return {**self.defaults, **{opt: getattr(cfg, name) for opt, name in self.flags.items()
                                    if getattr(cfg, name) not in ("", -1)}}

    def advantages(self, rewards: torch.Tensor, **kw) -> torch.Tensor:
        """``advantage_fn(rewards, **defaults, **kw)``; options only other parts use (the
        tracker's, the loss's) are not passed to it."""
        params = inspect.signature(self.advantage_fn).parameters
        kw = {k: v for k, v in {**self.defaults, **kw}.items()
              if k in params or (k not in self.flags and k not in self.defaults)}
        return self.advantage_fn(rewards, **kw)

    def loss_options(self, cfg) -> dict:
        """The options ``loss_fn`` takes (GVPO's beta and group size)."""
        params = inspect.signature(self.loss_fn).parameters
        return {k: v for k, v in self.options(cfg).items() if k in params}


ALGORITHMS: dict[str, Algorithm] = {}


def register_algorithm(algo: Algorithm) -> Algorithm:
    """Add an algorithm to the registry (``--algo NAME``); a taken name is refused."""
    if algo.name in ALGORITHMS:
        raise ValueError(f"algorithm {algo.name!r} is already registered")
    ALGORITHMS[algo.name] = algo
    return algo


def get_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; valid: {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


def algorithm_help() -> str:
    """One line per registered algorithm, with its paper, for ``--help``."""
    return "\n".join(f"  {a.name:<8} {a.paper}" for a in ALGORITHMS.values())


def dapo_overlong(rewards: torch.Tensor, lengths: torch.Tensor, *, max_len: int, overlong_buffer: int = -1,
                  **_) -> torch.Tensor:
    """DAPO's reward shaping: + ``overlong_penalty`` with L_cache = ``overlong_buffer`` (-1: a fifth
    of the generation budget, as the paper's 4096 of 20480)."""
    buffer = max_len // 5 if overlong_buffer < 0 else overlong_buffer
    return rewards + overlong_penalty(lengths, max_len=max_len, buffer=buffer)


SCALE = dict(scale="scale_rewards")  # --scale_rewards reaches every group-advantage algorithm
register_algorithm(Algorithm("grpo", grpo_advantages, "seq_mean_token_mean", flags=SCALE,
                             paper="GRPO: DeepSeekMath (Shao et al. 2024, arXiv 2402.03300)"))
# Dr. GRPO = GRPO minus std scaling (advantages) minus per-sequence length mean (agg);
# the learner passes max_len = generate_max_length to the loss.
register_algorithm(Algorithm("drgrpo", drgrpo_advantages, "seq_mean_token_sum_norm", flags=SCALE,
                             paper="Dr. GRPO: Understanding R1-Zero-Like Training (Liu et al. 2025, arXiv 2503.20783)"))
# RiskPO's numbers come from verl's default loss_agg_mode "token-mean" (its scripts never
# override it) with clip 0.2, so we use token_mean. Defaults: its run_*_MVaR_math.sh.
register_algorithm(Algorithm(
    "mvar", mvar_advantages, "token_mean", tracker=MVaRTracker, prompts_multiple_of="bundle_size",
    defaults=dict(bundle_size=5, alpha=0.2, beta=0.9, w_mix=1.5, credit="std", q_mode="track"),
    flags=dict(bundle_size="bundle_size", alpha="mvar_alpha", beta="mvar_beta", w_mix="w_mix",
               credit="credit", q_mode="q_mode", q_lr="q_lr", std_of="mvar_std_of",
               natural_baseline="mvar_natural_baseline", std_norm="mvar_std_norm"),
    paper="RiskPO: Mixed Value-at-Risk (Ren et al. 2025, arXiv 2510.00911)"))
# DAPO: token-mean loss, clip-higher, the overlong reward shaping and dynamic sampling (the loop
# refills the batch with groups whose rewards differ, at most dynamic_rounds extra rounds).
register_algorithm(Algorithm("dapo", grpo_advantages, "token_mean", clip_high=0.28, shape_rewards=dapo_overlong,
                             defaults=dict(dynamic_rounds=3),
                             flags=dict(SCALE, overlong_buffer="overlong_buffer", dynamic_rounds="dynamic_sampling_rounds"),
                             paper="DAPO (Yu et al. 2025, arXiv 2503.14476): token-mean, clip-higher, overlong shaping"))
register_algorithm(Algorithm("gspo", grpo_advantages, "seq_mean_token_mean", loss_fn=gspo_loss,
                             clip_low=3e-4, clip_high=4e-4, flags=SCALE,
                             paper="GSPO: Group Sequence Policy Optimization (Zheng et al. 2025, arXiv 2507.18071)"))
register_algorithm(Algorithm("cispo", grpo_advantages, "token_mean", loss_fn=cispo_loss, clip_low=1.0,
                             clip_high=0.28, flags=SCALE,
                             paper="CISPO: MiniMax-M1 (MiniMax 2025, arXiv 2506.13585)"))
# GVPO's anchor: the paper's KL is to a reference pi_ref ("ref", the default; the frozen initial
# model, as --beta's); its released verl recipe uses the rollout policy itself ("old", at which
# the KL term vanishes on a single update per batch, and acts from the second update on). The
# learner recomputes the weights before every update. Scale: a mean over groups (the release sums
# over its micro-batch), so the learning rate does not depend on the groups per update.
register_algorithm(Algorithm("gvpo", drgrpo_advantages, "seq_mean_token_sum_norm", loss_fn=gvpo_loss,
                             reweight=gvpo_weights,
                             ref_model=True, defaults=dict(beta=0.1, anchor="ref"),
                             flags=dict(beta="gvpo_beta", anchor="gvpo_anchor", group_size="num_samples"),
                             paper="GVPO: Group Variance Policy Optimization (Zhang et al. 2025, arXiv 2504.19599)"))
register_algorithm(Algorithm("gfpo", gfpo_advantages, "seq_mean_token_mean", inputs=("lengths",),
                             flags=dict(SCALE, keep="gfpo_keep", metric="gfpo_metric"),
                             paper="GFPO: Group Filtered Policy Optimization (Shrivastava et al. 2025, arXiv 2508.09726)"))
