"""Advantages, the clipped surrogate, aggregations, KL, and the ``ALGORITHMS`` registry.

Everything here is a pure tensor function: tensors and scalars in, tensors out, no config.
Shapes: rewards ``[P, G]`` (P prompts x G samples each); logprobs, old_logprobs, ref_logprobs
and mask ``[N, T]`` (N = P*G responses, T response positions, mask 1 on response tokens);
sequence advantages ``[N]`` (``adv.flatten()`` of the ``[P, G]`` advantages, prompt-major).

An algorithm is (advantage function, aggregation, clip range); see ``ALGORITHMS`` at the end.
"""

from __future__ import annotations

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

def group_advantages(rewards: torch.Tensor, *, scale_by_std: bool, eps: float = 1e-6) -> torch.Tensor:
    """Group-relative advantages, one per response.

    GRPO (Shao et al. 2024, arXiv 2402.03300, Sec. 4.1.2):  A_i = (r_i - mean(r)) / (std(r) + eps)
    Dr. GRPO (Liu et al. 2025, arXiv 2503.20783, Sec. 3.1): A_i =  r_i - mean(r)
    Dr. GRPO's "remove difficulty bias" is ``scale_by_std=False``: dividing by the group std
    up-weights questions that are nearly always solved or nearly always failed.

    std is the unbiased group std (as ``torch.std`` and TRL / verl). A group of one sample or a
    constant group gets advantage 0, never NaN. Non-finite rewards raise ValueError.
    """
    rewards = _check_rewards(rewards)  # [P, G]
    centred = rewards - rewards.mean(dim=1, keepdim=True)  # [P, G]
    if not scale_by_std:
        return centred
    if rewards.shape[1] < 2:  # torch.std of one element is NaN; centred is already 0
        return centred
    std = rewards.std(dim=1, keepdim=True)  # [P, 1]
    return centred / (std + eps)  # [P, G]


def grpo_advantages(rewards: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    return group_advantages(rewards, scale_by_std=True, eps=eps)


def drgrpo_advantages(rewards: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    """Dr. GRPO modification 2 ("remove difficulty bias"): no std division.

    Modification 1 ("remove length bias") lives in the aggregation: ``seq_mean_token_sum_norm``.
    TRL's ``loss_type="dr_grpo"`` only changes the aggregation; it keeps std scaling unless you
    also set ``scale_rewards="none"``. Ours is the paper's Dr. GRPO: both modifications.
    """
    return group_advantages(rewards, scale_by_std=False, eps=eps)


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
                return_stats: bool = False):
    """PPO-clip surrogate (Schulman et al. 2017, arXiv 1707.06347, Eq. 7), per token, negated:

        l_it = max( -A_i * rho_it,  -A_i * clip(rho_it, 1 - clip_low, 1 + clip_high) )
        rho_it = exp(logprobs_it - old_logprobs_it)

    then reduced with ``aggregate`` (see there for the normalisers). Decoupled clip_low /
    clip_high is DAPO's "clip-higher" (Yu et al. 2025, arXiv 2503.14476, Sec. 3.1).
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
    ratio = torch.exp(log_ratio)  # [N, T]
    adv = advantages.to(ratio.dtype).unsqueeze(-1)  # [N, 1]
    unclipped = -adv * ratio  # [N, T]
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)  # [N, T]
    per_token = torch.maximum(unclipped, clipped)  # [N, T]
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
                    std_of: str = "advantage", eps: float = 1e-6) -> torch.Tensor:
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
    for a single paper. ``std_of="advantage"`` (default, as specified for this library) takes the
    std of the A_paper values; ``std_of="score"`` takes the std of the paper scores s, which is
    what the released code does. Either std is replaced by 1 when it is <= 1e-3 (our guard, not
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


# ---------------------------------------------------------------- registry

@dataclass(frozen=True)
class Algorithm:
    """An algorithm = advantage function + aggregation + clip range.

    ``advantage_fn(rewards [P, G], **kw) -> [P, G]``; ``defaults`` are its keyword defaults, and
    ``algo.advantages(rewards, **overrides)`` merges the two. ``uses_tracker``: the loop passes
    ``tracked=tracker.tracked(alpha, beta)`` and updates a ``QuantileTracker``.
    """
    name: str
    advantage_fn: Callable[..., torch.Tensor]
    agg: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    clip_low: float = 0.2
    clip_high: float = 0.2
    uses_tracker: bool = False
    reference: str = ""

    def __post_init__(self):
        if self.agg not in AGGS:
            raise ValueError(f"{self.name}: unknown agg {self.agg!r}; valid: {AGGS}")
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    def advantages(self, rewards: torch.Tensor, **overrides) -> torch.Tensor:
        return self.advantage_fn(rewards, **{**self.defaults, **overrides})


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in [
    Algorithm("grpo", grpo_advantages, "seq_mean_token_mean", reference="arXiv 2402.03300"),
    # Dr. GRPO = GRPO minus std scaling (advantages) minus per-sequence length mean (agg);
    # the caller passes max_len = generate_max_length to policy_loss.
    Algorithm("drgrpo", drgrpo_advantages, "seq_mean_token_sum_norm", reference="arXiv 2503.20783"),
    # RiskPO's numbers come from verl's default loss_agg_mode "token-mean" (its scripts never
    # override it) with clip 0.2, so we use token_mean. Defaults: its run_*_MVaR_math.sh.
    Algorithm("mvar", mvar_advantages, "token_mean", uses_tracker=True, reference="arXiv 2510.00911",
              defaults=dict(bundle_size=5, alpha=0.2, beta=0.9, w_mix=1.5, credit="std", q_mode="track")),
    # DAPO's loss-side deltas only (token-mean, clip-higher); dynamic sampling and overlong
    # reward shaping are not part of this entry.
    Algorithm("dapo", grpo_advantages, "token_mean", clip_high=0.28, reference="arXiv 2503.14476"),
]}


def get_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; valid: {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]
