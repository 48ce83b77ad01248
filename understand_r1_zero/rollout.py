"""Rollout records, the truncation rule, and collation into tensors for the learner.

``Sample`` is what every actor backend returns, one per (prompt, sample) pair.
``token_logprobs`` is the learner-side recomputation of the same numbers; the actor
tests check the two agree (the train/inference mismatch check).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Sample:
    prompt_ids: list[int]
    response_ids: list[int]
    text: str  # the decoded response (the stop string included where the template keeps it)
    logprobs: list[float]  # the sampler's per-token logprob of each response token
    finish_reason: str  # "stop" (EOS or a stop string) or "length" (hit max_tokens)
    extra: dict = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding. Without them a left-padded row is scored at shifted
    RoPE positions, the learner's logprobs disagree with the sampler's, and RL collapses."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # [B, T]


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                   temperature: float = 1.0, with_entropy: bool = False, first: int = 0):
    """Log-probability of every token given its prefix.

    input_ids, attention_mask: [B, T] (left or right padded). Returns logprobs [B, T-1] for
    tokens ``input_ids[:, 1:]`` (and the entropy [B, T-1] of each predictive distribution if
    ``with_entropy``). Logits are divided by the sampling temperature, as the sampler does.

    ``first``: output columns before it are not needed (e.g. the shared prompt part of a
    right-padded batch) and come back as 0. The LM head and the log-softmax then run only on
    the last T - first positions (HF's ``logits_to_keep``, as TRL does): on long prompts this
    saves most of the [B, T, V] logits' memory and time.
    """
    T = input_ids.shape[1]
    first = max(0, min(int(first), T - 1))
    kw = {"logits_to_keep": T - first} if first else {}
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask), use_cache=False, **kw)
    logits = out.logits[:, :-1].float()  # [B, T-1-first, V]: predicts tokens first+1 .. T-1
    if temperature != 1.0:
        logits = logits / temperature
    targets = input_ids[:, first + 1:]  # [B, T-1-first]
    logz = torch.logsumexp(logits, dim=-1)  # [B, T-1-first]
    lp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logz  # [B, T-1-first]
    pad = (first, 0)  # back to [B, T-1], zeros in front
    if not with_entropy:
        return torch.nn.functional.pad(lp, pad)
    with torch.no_grad():
        p = torch.softmax(logits, dim=-1)
        ent = logz - (p * logits).sum(-1)  # [B, T-1-first]
    return torch.nn.functional.pad(lp, pad), torch.nn.functional.pad(ent, pad)


def collate(samples: list[Sample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad prompt+response into a batch trimmed to its own longest row.

    Returns input_ids / attention_mask [B, T] and response_mask [B, T-1], aligned with
    ``token_logprobs``' output (1 where the predicted token is a response token).
    """
    seqs = [s.prompt_ids + s.response_ids for s in samples]
    T = max(len(x) for x in seqs)
    B = len(seqs)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    attn = torch.zeros((B, T), dtype=torch.long)
    resp = torch.zeros((B, T - 1), dtype=torch.float32)
    for i, (s, x) in enumerate(zip(samples, seqs)):
        input_ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        attn[i, : len(x)] = 1
        p, r = len(s.prompt_ids), len(s.response_ids)
        resp[i, p - 1 : p - 1 + r] = 1.0
    return {"input_ids": input_ids, "attention_mask": attn, "response_mask": resp}
