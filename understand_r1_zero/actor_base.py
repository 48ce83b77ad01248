"""The actor interface: what the loop calls on either backend (``generate``, ``sleep`` / ``wake``,
``load_weights``, ``close``), with its argument checks, its sleep state and the tokenizer checks
both backends share. ``actor.py`` documents the semantics and holds the transformers backend and
``make_actor``; ``vllm_backend.py`` holds the vLLM one. Both import this module, which imports
neither.
"""

from __future__ import annotations

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
