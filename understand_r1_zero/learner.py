"""The learner: a DeepSpeed engine (ZeRO 0-3) that scores rollouts and takes policy-gradient steps.

Gradient normalisation (see losses.policy_loss): every micro-batch loss is divided by the
*global* number of sequences (or tokens) of its optimizer update, across all micro-batches and
ranks, so the per-micro-batch losses sum to the full-batch loss. DeepSpeed would then divide
by the accumulation steps (we pass ``scale_wrt_gas=False``) and average gradients over ranks
(we multiply by ``world_size``). The result: gradients do not depend on ``--micro_batch_size``
or the number of processes (tested 1 vs 2 processes).

For ``seq_mean_token_mean`` (GRPO) the normaliser is the global sequence count of the update;
each sequence's own token mean is local to it, so that is exact, too.

Scoring (``rollout.response_logprobs``): each distinct prompt of a micro-batch runs once and its
responses run on its row-expanded KV cache (``--share_prompts``, default on; off under gradient
checkpointing), so a GRPO micro-batch with G responses per prompt pays for each prompt once.
Logprobs and gradients equal the per-row pass up to float rounding (tests/test_learner.py).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.distributed as dist

from . import lora, losses
from .rollout import collate_grouped, response_logprobs


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def all_reduce_sums(sums: dict[str, float], device: torch.device, op: str = "sum") -> dict[str, float]:
    """Sum (``op="max"``: take the max of) named scalars over all ranks (a no-op for one process).

    The one home of the library's ``all_reduce`` calls (tests/test_train_config.py checks that
    no other module calls it). The tensor lives on ``device``, the learner's: NCCL refuses CPU
    tensors ("No backend type associated with device type cpu") and gloo CUDA ones, so a CPU
    run with gloo exercises this very line."""
    names = list(sums)
    t = torch.tensor([float(sums[k]) for k in names], dtype=torch.float64, device=device)
    if dist.is_initialized() and dist.get_world_size() > 1:
        if op not in ("sum", "max"):
            raise ValueError(f"all_reduce_sums: op must be sum or max, got {op!r}")
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return dict(zip(names, t.tolist()))


def init_distributed(cpu: bool) -> tuple[int, int, int]:
    """Initialise torch.distributed (gloo on CPU, NCCL on GPU) for 1 or N processes.

    Works under ``torchrun``, the ``deepspeed`` launcher, or plain ``python`` (one process)."""
    import deepspeed

    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:  # (setdefault would bind a socket even when it is set)
        os.environ["MASTER_PORT"] = str(free_port())
    if cpu:
        _skip_cpu_shm_op()
    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend="gloo" if cpu else "nccl", verbose=False)
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))


def _skip_cpu_shm_op() -> None:
    """DeepSpeed's CPU comm backend JIT-compiles a shared-memory all-reduce op whenever it starts
    (~35 s per environment, under a file lock in ~/.cache/torch_extensions). A build that was
    killed leaves the lock behind and every later launch waits on it for ever, silently. Only
    DeepSpeed's ``inference_all_reduce`` uses that op; training never calls it. So the op is not
    built, for any number of processes, and a stale lock is named in one line instead."""
    import glob
    import importlib

    # (not `import deepspeed.comm.torch as m`: deepspeed.comm re-exports torch itself under that
    # name, so the attribute lookup would patch the torch package and the op would still build)
    ds_torch = importlib.import_module("deepspeed.comm.torch")
    ds_torch.build_shm_op = lambda: None
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                   "torch_extensions")
    locks = glob.glob(os.path.join(root, "*", "*", "lock"))
    if locks and os.environ.get("RANK", "0") == "0":
        print(f"[deepspeed] stale op-build lock(s), left by a killed build: {', '.join(locks)}; this run "
              f"needs no op build, but other DeepSpeed tools would wait on them for ever: delete them",
              flush=True)


def _lr_lambda(kind: str, warmup: int, total: int):
    def f(update: int) -> float:
        if warmup and update < warmup:
            return (update + 1) / warmup
        if kind == "constant":
            return 1.0
        frac = min(1.0, (update - warmup) / max(1, total - warmup))
        return 1.0 - frac if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * frac))

    return f


class Learner:
    def __init__(self, cfg, model_path: str, *, world_size: int, device: torch.device, pad_id: int):
        """``pad_id``: an id the model's embedding has, for padding batches (``Actor.pad_id``)."""
        import deepspeed
        from transformers import AutoModelForCausalLM

        self.cfg, self.world_size, self.device, self.pad_id = cfg, world_size, device, pad_id
        self.algo = losses.get_algorithm(cfg.algo)
        # Loaded in the dtype it trains in: an fp32 load under --bf16 would hold 4P bytes of host
        # RAM per rank for nothing (DeepSpeed keeps its own fp32 master copy in the optimizer).
        dtype = torch.bfloat16 if cfg.bf16 else torch.float32
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
        model.config.use_cache = False
        # DeepSpeed accumulates bf16 gradients in fp32 only under ZeRO (its ZeRO-0 path refuses
        # the mix), so --bf16 at --zero_stage 0 runs as stage 1: for one process the same
        # update, with DeepSpeed's fp32-accumulating BF16 optimizer.
        self.zero_stage = 1 if cfg.bf16 and cfg.zero_stage == 0 else cfg.zero_stage
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.lora_rank:  # only the adapter requires grad: the optimizer below holds its state alone
            model = lora.wrap(model, cfg)
        self.sizes = lora.param_counts(model)  # (trainable, total), before ZeRO-3 partitions them
        self.per_rank_update = cfg.train_batch_size // world_size  # responses per update per rank
        gas = self.per_rank_update // cfg.micro_batch_size
        ds_config = {
            "train_batch_size": cfg.train_batch_size,
            "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
            "gradient_accumulation_steps": gas,
            "gradient_clipping": cfg.max_norm if cfg.max_norm > 0 else 0.0,
            "zero_optimization": {"stage": self.zero_stage,
                                  "stage3_gather_16bit_weights_on_model_save": False},
            "bf16": {"enabled": bool(cfg.bf16)},
            # The recipes accumulate 16+ micro-batches: bf16 sums would lose the small ones.
            "data_types": {"grad_accum_dtype": "fp32"},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        total_updates = cfg.max_steps * cfg.updates_per_step
        params = [p for p in model.parameters() if p.requires_grad]
        # One client optimizer on every device. A ds_config "AdamW" would become DeepSpeed's
        # FusedAdam on GPU, which JIT-compiles a CUDA extension (nvcc + CUDA_HOME; PyPI DeepSpeed
        # ships no prebuilt ops). torch's AdamW needs nothing; on CUDA its fused kernel. DeepSpeed
        # swaps the fp32 master (or ZeRO-partitioned) tensors into its param groups.
        opt = torch.optim.AdamW(params, lr=cfg.learning_rate, betas=(0.9, 0.999),
                                weight_decay=cfg.weight_decay, fused=device.type == "cuda")
        lam = _lr_lambda(cfg.lr_scheduler, cfg.warmup_steps, total_updates)
        sched = (lambda o: torch.optim.lr_scheduler.LambdaLR(o, lam))
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=opt, lr_scheduler=sched, config=ds_config)
        # Shared prompt forward (rollout.response_logprobs); HF drops the KV cache under
        # gradient checkpointing, so there every response row recomputes its prompt.
        self.share_prompts = cfg.share_prompts and not cfg.gradient_checkpointing
        self.ref = None
        if (cfg.beta > 0 or self.algo.ref_model) and cfg.lora_rank:  # the base model: no second copy
            self.ref = lora.AdapterDisabled(self.engine.module)
        elif cfg.beta > 0 or self.algo.ref_model:
            self.ref = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device).eval()
            self.ref.requires_grad_(False)

    # ------------------------------------------------------------------ scoring
    def _collate(self, samples) -> dict[str, torch.Tensor]:
        """``rollout.collate_grouped`` on the learner's device."""
        return {k: v.to(self.device) for k, v in collate_grouped(samples, self.pad_id).items()}

    @torch.no_grad()
    def logprobs(self, model, samples, size) -> list[torch.Tensor]:
        """Per-sample response-token logprobs [len(response)] under ``model`` (no grad)."""
        out = []
        for i in range(0, len(samples), size):
            mb = samples[i : i + size]
            lp = response_logprobs(model, self._collate(mb), temperature=self.cfg.temperature,
                                   share_prompts=self.share_prompts)  # [B, Lr]
            out.extend(lp[j, : len(s.response_ids)].float().cpu() for j, s in enumerate(mb))
        return out

    # ------------------------------------------------------------------ update
    def train(self, samples, advantages: torch.Tensor, loss_mask: torch.Tensor, *, seed: int) -> dict:
        """``num_ppo_epochs`` passes of clipped policy-gradient updates on this rank's samples.

        samples: this rank's responses; advantages: [N] sequence advantages; loss_mask: [N]
        (0 = excluded, e.g. truncated under --truncated mask). Returns reduced stats.
        """
        cfg, N = self.cfg, len(samples)
        self.engine.train()
        # Old logprobs for the ratio. With exactly one update per step the policy has not moved
        # when the loss is computed, so old == current.detach() exactly and a forward is saved.
        single = cfg.updates_per_step == 1
        old = None if single else self.logprobs(self.engine.module, samples, cfg.micro_batch_size)
        ref = self.logprobs(self.ref, samples, cfg.micro_batch_size) if self.ref is not None else None
        sampler = [torch.tensor(s.logprobs) for s in samples]  # what the actor sampled from
        loss_opts = self.algo.loss_options(cfg)
        agg = self.algo.agg
        max_len = cfg.generate_max_length
        sums = {"loss": 0.0, "entropy": 0.0, "clip": 0.0, "kl": 0.0, "tokens": 0.0, "seq_tokens": 0.0,
                "mm_tokens": 0.0, "mm_abs": 0.0, "mm_k3": 0.0, "mm_out": 0.0, "mm_ratio": 0.0, "tis_w": 0.0, "tis_cut": 0.0}
        ratio_max = 0.0
        grad_norms = []
        rng = np.random.default_rng(seed)
        for epoch in range(cfg.num_ppo_epochs):
            order = rng.permutation(N) if cfg.num_ppo_epochs > 1 or not single else np.arange(N)
            for u in range(0, N, self.per_rank_update):
                idx = order[u : u + self.per_rank_update]
                adv_u = self._reweight(advantages, samples, old, ref, first=epoch == 0 and u == 0)  # [N]
                # Global normalisers of this update (all micro-batches, all ranks). num_seqs counts
                # every response, masked ones too (--truncated mask): Dr. GRPO's constant is 1/G over
                # all G responses, as in oat and TRL; a masked response adds 0 to the sum.
                counts = all_reduce_sums({
                    "seqs": float(len(idx)),
                    "tokens": sum(len(samples[i].response_ids) * float(loss_mask[i]) for i in idx)}, self.device)
                num_seqs, num_tokens = max(counts["seqs"], 1.0), max(counts["tokens"], 1.0)
                for m in range(0, len(idx), cfg.micro_batch_size):
                    mi = idx[m : m + cfg.micro_batch_size]
                    mb = [samples[i] for i in mi]
                    b = self._collate(mb)
                    lp, ent = response_logprobs(self.engine, b, temperature=cfg.temperature, with_entropy=True,
                                                share_prompts=self.share_prompts)  # [B, Lr]
                    mask = b["response_mask"] * loss_mask[mi].to(self.device)[:, None]  # [B, Lr]
                    old_lp = lp.detach() if old is None else _stack(old, mi, lp)
                    samp = _stack(sampler, mi, lp)  # [B, Lr]
                    if epoch == 0:  # each response once; old_lp is the pre-update policy's
                        ratio_max = max(ratio_max, self._audit(sums, old_lp, samp, b["response_mask"]))
                    adv = adv_u[mi].to(self.device)  # [B]
                    extra = {}  # what the algorithm asked the loop for (Algorithm.sampler_logprobs, .ref_model)
                    if self.algo.sampler_logprobs:
                        extra["sampler_logprobs"] = samp
                    if cfg.tis_cap > 0:  # the sampler-learner mismatch correction
                        w = losses.mismatch_weights(old_lp, samp, mask, cap=cfg.tis_cap, level=cfg.tis_level,
                                                    mode=cfg.tis_mode)  # [B, Lr], detached
                        extra["weights"] = w
                        sums["tis_w"] += float((w * mask).sum())
                        full = losses.mismatch_weights(old_lp, samp, mask, cap=math.inf, level=cfg.tis_level)
                        sums["tis_cut"] += float(((w < full) * mask).sum())  # tokens the cap changed
                    if self.algo.ref_model:
                        extra["ref_logprobs"] = _stack(ref, mi, lp)  # [B, Lr]
                    loss, st = self.algo.loss_fn(
                        lp, old_lp, adv, mask, clip_low=cfg.clip_low, clip_high=cfg.clip_high,
                        agg=agg, max_len=max_len, num_seqs=num_seqs, num_tokens=num_tokens,
                        clip_ratio_c=cfg.clip_ratio_c, return_stats=True, **extra, **loss_opts)
                    if cfg.beta > 0:
                        kl = losses.kl_penalty(lp, _stack(ref, mi, lp), kind=cfg.kl_kind)  # [B, Lr]
                        loss = loss + cfg.beta * losses.aggregate(
                            kl, mask, agg, max_len=max_len, num_seqs=num_seqs, num_tokens=num_tokens)
                        sums["kl"] += float((kl.detach() * mask).sum())
                    # Our normalisers already make micro-batch losses add up to the update's
                    # loss: undo DeepSpeed's 1/GAS and its 1/world_size gradient averaging.
                    self.engine.backward(loss * self.world_size, scale_wrt_gas=False)
                    last = m + cfg.micro_batch_size >= len(idx)
                    if last and self.zero_stage == 0:
                        # DeepSpeed records no norm for fp32 ZeRO-0; grads are already reduced here.
                        own_norm = torch.linalg.vector_norm(torch.stack([
                            p.grad.detach().float().norm() for p in self.engine.module.parameters()
                            if p.grad is not None])).item()
                    self.engine.step()
                    ntok = float(mask.sum())
                    sums["loss"] += float(loss.detach())
                    sums["entropy"] += float((ent * mask).sum())
                    sums["clip"] += float(st["clip_frac"]) * ntok
                    sums["tokens"] += ntok
                    prompts = {tuple(x.prompt_ids) for x in mb} if self.share_prompts else [x.prompt_ids for x in mb]
                    sums["seq_tokens"] += sum(map(len, prompts)) + sum(len(x.response_ids) for x in mb)
                gn = self.engine.get_global_grad_norm() if self.zero_stage > 0 else own_norm
                grad_norms.append(float(gn) if gn is not None else float("nan"))
        t = all_reduce_sums(sums, self.device)
        mm = max(t["mm_tokens"], 1.0)
        n_updates = max(1, len(grad_norms))
        tok = max(t["tokens"], 1.0)
        out = {
            "train/loss": t["loss"] / n_updates,
            "train/entropy": t["entropy"] / tok,
            "train/clip_frac": t["clip"] / tok,
            "train/grad_norm": float(np.mean(grad_norms)) if grad_norms else float("nan"),
            "train/lr": self.scheduler.get_last_lr()[0],
            "train/tokens": tok,
            # tokens the training pass forwarded (each distinct prompt once under sharing): MFU's count
            "train/seq_tokens": t["seq_tokens"],
            # the sampler-learner mismatch audit: the learner's pre-update logprobs vs the actor's
            "mismatch/logprob_abs_diff": t["mm_abs"] / mm,
            "mismatch/kl_k3": t["mm_k3"] / mm,
            "mismatch/ratio_outside_frac": t["mm_out"] / mm,
            "mismatch/ratio_mean": t["mm_ratio"] / mm,
            "mismatch/ratio_max": all_reduce_sums({"r": ratio_max}, self.device, op="max")["r"],
        }
        if cfg.tis_cap > 0:
            out["mismatch/tis_weight_mean"] = t["tis_w"] / tok
            out["mismatch/tis_cut_frac"] = t["tis_cut"] / tok
        if cfg.beta > 0:
            out["train/kl"] = t["kl"] / tok
        return out

    def _reweight(self, advantages, samples, old, ref, *, first: bool) -> torch.Tensor:
        """``Algorithm.reweight`` (GVPO) before each optimizer update: the weights from the current
        policy's summed response logprobs (a no-grad pass over every response, groups whole) and
        the anchor's (the reference model, or the rollout policy ``old``). Other algorithms: the
        advantages as given."""
        if self.algo.reweight is None:
            return advantages
        cfg = self.cfg
        opts = self.algo.options(cfg)
        cur = old if first and old is not None else self.logprobs(self.engine.module, samples, cfg.micro_batch_size)
        anchor = ref if opts.get("anchor") == "ref" else (old if old is not None else cur)
        seq = torch.tensor([float(x.sum()) for x in cur]), torch.tensor([float(x.sum()) for x in anchor])
        return self.algo.reweight(advantages, *seq, **opts)  # [N]

    @staticmethod
    @torch.no_grad()
    def _audit(sums: dict, old_lp, samp, resp_mask) -> float:
        """Add one micro-batch to the mismatch sums: |learner - sampler| logprob, the k3 estimate of
        KL(sampler || learner) on the sampler's tokens (r - 1 - log r, r = pi_learner / pi_sampler),
        ratios outside [0.9, 1.1], the mean ratio (the nucleus mass under top-p). Returns the
        micro-batch's max ratio."""
        m = resp_mask.bool()
        d = torch.where(m, old_lp.float() - samp.float(), torch.zeros_like(samp, dtype=torch.float32))  # [B, Lr]
        r = torch.exp(d)
        sums["mm_tokens"] += float(m.sum())
        sums["mm_abs"] += float(d.abs().sum())
        sums["mm_k3"] += float(torch.where(m, r - 1 - d, torch.zeros_like(d)).sum())
        sums["mm_out"] += float((((r < 0.9) | (r > 1.1)) & m).sum())
        sums["mm_ratio"] += float(torch.where(m, r, torch.zeros_like(r)).sum())
        return float(torch.where(m, r, torch.zeros_like(r)).max()) if m.any() else 0.0

    # ------------------------------------------------------------------ weights
    def _gathered(self, params):
        """Under ZeRO-3, ``params`` whole for the duration of the context (collective)."""
        import contextlib

        import deepspeed

        if self.zero_stage == 3:
            return deepspeed.zero.GatheredParameters(params, modifier_rank=None)
        return contextlib.nullcontext()

    def named_weights(self):
        """Yield (HF name, full tensor) one parameter at a time; under ZeRO-3 each is gathered
        just for the duration of its yield, so no second full copy of the model is built. Under
        LoRA the adapted weights come merged (W + (alpha/r) B A), one layer at a time.
        Collective under ZeRO-3: every rank must iterate in the same order."""
        if self.cfg.lora_rank:
            yield from lora.merged_weights(self.engine.module, self._gathered)
            return
        for name, p in self.engine.module.named_parameters():
            with self._gathered([p]):
                yield name, p.data

    def full_state_dict(self, rank: int) -> dict | None:
        """The full model state dict on rank 0 (CPU tensors), None elsewhere."""
        sd = {}
        for name, t in self.named_weights():
            if rank == 0:
                sd[name] = t.detach().to("cpu", copy=True)
        return sd if rank == 0 else None

    def adapter_state_dict(self, rank: int) -> dict | None:
        """LoRA: the adapter's tensors (peft's names) on rank 0, gathered under ZeRO-3; else None."""
        if not self.cfg.lora_rank:
            return None
        sd = {}
        for name, p in lora.adapter_params(self.engine.module):
            with self._gathered([p]):
                if rank == 0:
                    sd[name] = p.data.detach().to("cpu", copy=True)
        return sd if rank == 0 else None

    # ------------------------------------------------------------------ checkpoints
    def save(self, ckpt_dir: str, client_state: dict) -> None:
        # LoRA: the frozen base is --pretrain's, so DeepSpeed stores the adapter (and its optimizer) alone
        self.engine.save_checkpoint(ckpt_dir, tag="deepspeed", client_state=client_state,
                                    exclude_frozen_parameters=bool(self.cfg.lora_rank))

    def save_pretrained(self, out_dir: str, state_dict: dict) -> None:
        """The HF model directory (config + safetensors) of ``state_dict`` (``full_state_dict``'s)."""
        module = self.engine.module.get_base_model() if self.cfg.lora_rank else self.engine.module
        module.save_pretrained(out_dir, state_dict=state_dict, safe_serialization=True)

    def save_adapter(self, out_dir: str, state_dict: dict) -> None:
        lora.save_adapter(self.engine.module, out_dir, state_dict)

    def load(self, ckpt_dir: str) -> dict:
        path, client = self.engine.load_checkpoint(ckpt_dir, tag="deepspeed",
                                                   load_module_strict=not self.cfg.lora_rank)
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed state in {ckpt_dir}/deepspeed; is it a checkpoint dir?")
        return client


def _stack(per_sample: list[torch.Tensor], mi, like: torch.Tensor) -> torch.Tensor:
    """Per-sample response logprobs of samples ``mi`` as a right-padded [B, Lr] like ``like``."""
    out = torch.zeros_like(like, dtype=torch.float32)
    for j, i in enumerate(mi):
        out[j, : len(per_sample[i])] = per_sample[i].to(out.device)
    return out.to(like.dtype)
