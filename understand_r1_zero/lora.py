"""LoRA (Hu et al., arXiv 2106.09685) through peft: the learner trains only a low-rank adapter.

    y = x W^T + (alpha / r) * x A^T B^T        A: [r, in], B: [out, r], B = 0 at the start

What the rest of the library sees of it, all from this module:

* ``check`` (config time, no weights read): the targets exist and are linear, the rank fits.
* ``wrap``: the base model with adapters on the targets; only A and B require grad, so the
  learner's optimizer (and its ZeRO partitions) holds state for the adapter alone.
* ``AdapterDisabled``: the reference policy for ``--beta > 0`` / ``Algorithm.ref_model`` is the
  same module with its adapter switched off (peft's ``disable_adapter``), no second copy.
* ``merged_weights``: the weight sync streams W + (alpha / r) B A under the base model's HF
  names, one layer at a time (under ZeRO-3 the three tensors are gathered for that layer only),
  so both actors load it like a full fine-tune's weights and no merged model is ever built.
* ``save_adapter``: the adapter in peft's format (``PeftModel.from_pretrained(base, dir)``).
"""

from __future__ import annotations

import contextlib

import torch

ADAPTER = "default"  # peft's name for the one adapter


def _linear_layers(model) -> dict[str, tuple[int, int]]:
    """{module name: (in_features, out_features)} of the model's linear layers, output head excluded."""
    head = model.get_output_embeddings()
    return {n: (m.in_features, m.out_features) for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and m is not head}


def _matches(name: str, key: str) -> bool:
    return name == key or name.endswith("." + key)  # peft's rule for a list of target names


def targets(model, spec: str, rank: int, where: str = "the model") -> list[str]:
    """The linear layers ``spec`` names ('all-linear' or comma-separated module names, matched as
    name suffixes, as peft matches them), checked: each name matches a linear layer, and ``rank``
    fits every matched layer's width. Raises ValueError (one line, naming the fix)."""
    layers = _linear_layers(model)
    kinds = sorted({n.rsplit(".", 1)[-1] for n in layers})
    keys = list(layers) if spec == "all-linear" else [k.strip() for k in spec.split(",") if k.strip()]
    if not keys:
        raise ValueError(f"--lora_target_modules {spec!r} names no module; pass all-linear or some of: "
                         f"{','.join(kinds)}")
    chosen = []
    for key in keys:
        hit = [n for n in layers if _matches(n, key)]
        if not hit:
            raise ValueError(f"--lora_target_modules: {key!r} matches no linear layer of {where} (the output "
                             f"head is not adapted); its linear modules are: {','.join(kinds)}")
        chosen += [n for n in hit if n not in chosen]
    for n in chosen:
        width = min(layers[n])
        if rank > width:
            raise ValueError(f"--lora_rank {rank} exceeds the width of {n} ({layers[n][0]} in, {layers[n][1]} out): "
                             f"pick --lora_rank <= {width}, or leave that module out of --lora_target_modules")
    return chosen


def _model_config(spec: str):
    """The HF config of --pretrain, without reading weights ('synthetic': the demo's shape)."""
    if spec == "synthetic":
        from .synthetic import BaseModelConfig
        from .tiny import tiny_config

        b = BaseModelConfig()
        return tiny_config(b.vocab_size, hidden_size=b.hidden_size, num_layers=b.num_layers, num_heads=b.num_heads,
                           num_kv_heads=b.num_kv_heads)
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(spec)


def check(cfg) -> None:
    """--lora_* against --pretrain's architecture, on a meta-device model (no weights, no memory)."""
    if not cfg.lora_rank:
        return
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(_model_config(cfg.pretrain))
    targets(model, cfg.lora_target_modules, cfg.lora_rank, where=f"--pretrain {cfg.pretrain}")


def wrap(model, cfg):
    """``model`` with LoRA adapters on ``cfg.lora_target_modules``; only the adapters train."""
    from peft import LoraConfig, get_peft_model

    names = targets(model, cfg.lora_target_modules, cfg.lora_rank)
    config = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=names, bias="none")
    # A's random init is drawn from --seed alone, so every rank starts from the same adapter (ZeRO-3
    # partitions each rank's own copy) whatever the RNG went through before, and a run is reproducible.
    # autocast_adapter_dtype=False: under --bf16 the adapter is bf16 like the rest (DeepSpeed keeps
    # the fp32 master copy), rather than fp32 tensors inside a bf16 engine.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return get_peft_model(model, config, autocast_adapter_dtype=False)


def param_counts(model) -> tuple[int, int]:
    """(trainable, total) parameters, a tied head counted once."""
    ps = list(model.parameters())
    return sum(p.numel() for p in ps if p.requires_grad), sum(p.numel() for p in ps)


class AdapterDisabled:
    """The peft model with its adapter switched off, called like a model: the base model, which
    is the reference policy, on the learner's own weights."""

    def __init__(self, peft_model):
        self.model = peft_model

    def __call__(self, *args, **kwargs):
        with self.model.disable_adapter():
            return self.model(*args, **kwargs)


def _lora_layers(base) -> dict:
    from peft.tuners.lora import LoraLayer

    return {n: m for n, m in base.named_modules() if isinstance(m, LoraLayer)}


def merged_weights(peft_model, gather=lambda ps: contextlib.nullcontext()):
    """Yield (HF name, tensor) for the base model's parameters, each adapted weight merged:
    W + (alpha / r) B A (computed in fp32, cast back to W's dtype). ``gather(params)``: a
    context that makes the params whole (ZeRO-3's ``GatheredParameters``), held for one yield."""
    base = peft_model.get_base_model()
    adapted = _lora_layers(base)
    for name, p in base.named_parameters():
        owner, _, leaf = name.rpartition(".")
        if ".lora_" in name:
            continue  # A and B: folded into their layer's weight below
        layer = owner[: -len(".base_layer")] if owner.endswith(".base_layer") else None
        if layer not in adapted:
            with gather([p]):
                yield name, p.data
            continue
        m = adapted[layer]
        if leaf != "weight":  # the layer's bias: not adapted
            with gather([p]):
                yield f"{layer}.{leaf}", p.data
            continue
        A, B = m.lora_A[ADAPTER].weight, m.lora_B[ADAPTER].weight  # [r, in], [out, r]
        with gather([p, A, B]):
            w = p.data.float() + m.scaling[ADAPTER] * (B.data.float() @ A.data.float())  # [out, in]
            yield f"{layer}.weight", w.to(p.dtype)


def adapter_params(peft_model):
    """(peft state-dict name, parameter) of the adapter's own tensors, A and B."""
    return [(n, p) for n, p in peft_model.named_parameters() if ".lora_" in n]


def save_adapter(peft_model, out_dir: str, state: dict) -> None:
    """The adapter in peft's format (adapter_config.json + adapter_model.safetensors)."""
    peft_model.save_pretrained(out_dir, state_dict=state, safe_serialization=True)
