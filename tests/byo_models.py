"""Models and tokenizers built without ``understand_r1_zero.tiny``, the way a user's own would be:
other tokenizer algorithms, other special tokens, other architectures and embedding sizes.

* ``char_qwen2``: a char-level ``tokenizers`` WordLevel vocabulary with ``<pad>``, ``<s>`` and
  ``</s>``, saved with ``PreTrainedTokenizerFast(...).save_pretrained``; a Qwen2 model with tied
  embeddings whose ``vocab_size`` is the vocabulary's. Loaded back, transformers makes it a
  Qwen2 tokenizer and appends ``<|endoftext|>`` one past the embedding (the issue-14 crash).
* ``wordpiece_llama``: a WordPiece vocabulary with no pad and no BOS token and two EOS tokens
  listed in ``generation_config.json``; a Llama model with untied embeddings padded past the
  tokenizer (as Qwen pads to a multiple of 128).
"""

from __future__ import annotations

import json
import os
import string

CHARS = string.ascii_letters + string.digits + " +-*/=.,:;?!<>()[]{}\\^_$'\n"


def _tiny_cfg(**kw):
    return dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, max_position_embeddings=512, **kw)


def char_qwen2(out: str, seed: int = 0) -> str:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2}
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.Fuse()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                            eos_token="</s>").save_pretrained(out)
    cfg = Qwen2Config(vocab_size=len(vocab), tie_word_embeddings=True, bos_token_id=1,
                      eos_token_id=2, pad_token_id=0, **_tiny_cfg())
    torch.manual_seed(seed)
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    return out


def wordpiece_llama(out: str, seed: int = 0) -> str:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Digits(individual_digits=True)])
    tok.decoder = decoders.WordPiece()
    words = ["What is 12 + 34 ? The answer is \\boxed{46} . Let x be the number of ways . Find x .",
             "Question : Answer : <think> </think> <answer> </answer> A conversation between User",
             "and Assistant . The user asks a question , and the Assistant solves it ."] * 20
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[UNK]", "[EOS]", "[EOT]"],
                                        initial_alphabet=list(CHARS), show_progress=False)
    tok.train_from_iterator(words, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[EOS]",
                                   additional_special_tokens=["[EOT]"])
    fast.save_pretrained(out)
    n = len(fast)
    padded = (n + 63) // 64 * 64 + 64  # embedding rows past the tokenizer, as Qwen's
    eos, eot = fast.convert_tokens_to_ids("[EOS]"), fast.convert_tokens_to_ids("[EOT]")
    cfg = LlamaConfig(vocab_size=padded, tie_word_embeddings=False, bos_token_id=None,
                      eos_token_id=[eos, eot], pad_token_id=None, head_dim=32, **_tiny_cfg())
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(out)
    GenerationConfig(eos_token_id=[eos, eot]).save_pretrained(out)
    with open(os.path.join(out, "byo.json"), "w") as f:
        json.dump({"tokenizer_len": n, "vocab_size": padded, "eos": [eos, eot]}, f)
    return out
