"""Rollout records, the truncation rule, and collation into tensors for the learner.

``Sample`` is what every actor backend returns, one per (prompt, sample) pair.
``collate_grouped`` + ``response_logprobs`` are the learner-side recomputation of the same
numbers (each distinct prompt run once, its G responses on its KV cache); ``token_logprobs``
scores any padded batch. The actor tests check the sampler and the learner agree (the
train/inference mismatch check).
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

    ``first``: output columns before it are not needed (e.g. the prompt columns of a
    prompt | response batch) and come back as 0. The LM head and the log-softmax then run only on
    the last T - first positions (HF's ``logits_to_keep``, as TRL does): on long prompts this
    saves most of the [B, T, V] logits' memory and time.
    """
    T = input_ids.shape[1]
    first = max(0, min(int(first), T - 1))
    kw = {"logits_to_keep": T - first} if first else {}
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask), use_cache=False, **kw)
    # out.logits[:, :-1]: [B, T-1-first, V], predicting tokens first+1 .. T-1
    lp, ent = _score(out.logits[:, :-1], input_ids[:, first + 1:], temperature, with_entropy)
    pad = (first, 0)  # back to [B, T-1], zeros in front
    if not with_entropy:
        return torch.nn.functional.pad(lp, pad)
    return torch.nn.functional.pad(lp, pad), torch.nn.functional.pad(ent, pad)


def _score(logits: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool):
    """log p(targets) [B, T] from logits [B, T, V] at ``temperature``, and the entropy [B, T]
    (None unless ``with_entropy``; computed without grad)."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    logz = torch.logsumexp(logits, dim=-1)  # [B, T]
    lp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logz  # [B, T]
    if not with_entropy:
        return lp, None
    with torch.no_grad():
        ent = logz - (torch.softmax(logits, dim=-1) * logits).sum(-1)  # [B, T]
    return lp, ent


def collate_grouped(samples: list[Sample], pad_id: int) -> dict[str, torch.Tensor]:
    """The learner's layout: each distinct prompt once, left-padded, and every response
    right-padded after it (TRL's prompt | completion layout, with the G copies of a prompt
    stored once).

    Returns prompt_ids / prompt_mask [U, Lp] (U distinct prompts), prompt_index [B] (the row
    of each sample's prompt), response_ids [B, Lr] and response_mask [B, Lr] (float, 1 on
    response tokens). ``response_logprobs`` scores it.
    """
    rows: dict[tuple, int] = {}
    index = [rows.setdefault(tuple(s.prompt_ids), len(rows)) for s in samples]
    prompts = list(rows)
    Lp = max(len(p) for p in prompts)
    Lr = max(1, max(len(s.response_ids) for s in samples))
    prompt_ids = torch.full((len(prompts), Lp), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros((len(prompts), Lp), dtype=torch.long)
    for i, p in enumerate(prompts):
        prompt_ids[i, Lp - len(p):] = torch.tensor(p, dtype=torch.long)
        prompt_mask[i, Lp - len(p):] = 1
    response_ids = torch.full((len(samples), Lr), pad_id, dtype=torch.long)
    response_mask = torch.zeros((len(samples), Lr), dtype=torch.float32)
    for i, s in enumerate(samples):
        response_ids[i, : len(s.response_ids)] = torch.tensor(s.response_ids, dtype=torch.long)
        response_mask[i, : len(s.response_ids)] = 1.0
    return {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask,
            "prompt_index": torch.tensor(index, dtype=torch.long),
            "response_ids": response_ids, "response_mask": response_mask}


def response_logprobs(model, batch: dict[str, torch.Tensor], *, temperature: float = 1.0,
                      with_entropy: bool = False, share_prompts: bool = True):
    """Logprobs [B, Lr] of each response token (and entropies if ``with_entropy``) for a
    ``collate_grouped`` batch; columns past a response's end are padding.

    ``share_prompts``: run each distinct prompt through the model once, then the B responses
    on top of its (row-expanded) KV cache. A GRPO batch holds G responses per prompt, so this
    skips (G-1)/G of the prompt tokens' compute; gradients reach the prompt's keys and values
    through the expansion (autograd sums the G copies), so logprobs and gradients equal the
    unshared pass up to float rounding (tested). Off, or when no prompt repeats, it is one
    plain forward over [B, Lp + Lr]. Needs a model whose forward takes a KV cache in training,
    so not with gradient checkpointing (HF drops the cache there).
    """
    pid, pmask, index = batch["prompt_ids"], batch["prompt_mask"], batch["prompt_index"]
    rid, rmask = batch["response_ids"], batch["response_mask"].long()
    Lp, Lr = pid.shape[1], rid.shape[1]
    if not share_prompts or pid.shape[0] == rid.shape[0]:
        ids = torch.cat([pid[index], rid], 1)  # [B, Lp + Lr]
        mask = torch.cat([pmask[index], rmask], 1)
        out = token_logprobs(model, ids, mask, temperature=temperature, with_entropy=with_entropy,
                             first=Lp - 1)  # [B, Lp + Lr - 1]
        return tuple(x[:, Lp - 1:] for x in out) if with_entropy else out[:, Lp - 1:]
    head = model(input_ids=pid, attention_mask=pmask, position_ids=position_ids_from_mask(pmask),
                 use_cache=True, logits_to_keep=1)  # prompts once: [U, 1, V] + their KV cache
    cache = head.past_key_values
    cache.reorder_cache(index)  # [U, ...] -> [B, ...] (index_select: differentiable)
    pos = pmask.sum(1)[index, None] + torch.arange(Lr, device=rid.device)[None]  # [B, Lr]
    tail = model(input_ids=rid, attention_mask=torch.cat([pmask[index], rmask], 1), position_ids=pos,
                 past_key_values=cache, use_cache=True)
    # The last prompt column predicts response token 0; response column t predicts token t+1.
    logits = torch.cat([head.logits[index], tail.logits[:, :-1]], 1)  # [B, Lr, V]
    lp, ent = _score(logits, rid, temperature, with_entropy)  # [B, Lr]
    return (lp, ent) if with_entropy else lp
