"""The embedded demo: a synthetic addition task and a tiny base model pretrained on it, on CPU.

A miniature R1-Zero needs a base model that already *can* solve the task but usually does not
under greedy decoding -- RL then has something to fix (Dr. GRPO, arXiv 2503.20783, Sec. 2: the
base model already holds the behaviours RL reinforces). We build one in under four minutes (218 s
on a quiet 2-core box):

* **Task.** "What is 47 + 385?" with 2-3 digit operands. The reference answer is an integer string.
  Problems are split into train and held-out by a fixed hash of (a, b), so no seed can leak an
  evaluation problem into pretraining or RL.
* **Solutions.** Column addition, ones first, one line per column, then ``\\boxed{}``::

      7+5=12
      4+8+1=13
      0+3+1=4
      \\boxed{432}

* **The planted flaw.** In ``slip_prob`` (60%) of the pretraining solutions the writer drops every
  carry (``4+8=12`` above, answer 322). The first column that receives a carry is a fork: the
  model has seen "+1" there only 40% of the time, so greedy decoding takes the slip and gets every
  carry problem wrong, while sampling at temperature 1 takes the right branch 40% of the time.
  About 30% of problems have no inner carry, so greedy accuracy starts near 30%, and RL only has to
  move one decision per problem to reach the careful solver's accuracy.
* **Noise with no effect on correctness.** ``unboxed_prob`` of solutions end "The answer is 432."
  (reward 0: the grader needs ``\\boxed{}``), ``verbose_prob`` open with a sentence, and each
  solution carries a geometric number of re-check lines ("Check: 47+385=432. Yes."), each added
  with ``recheck_prob``. Re-checks lengthen a response without changing its answer: the lever
  ``analysis`` uses to study GRPO's length bias (incorrect responses growing longer).

**The miniature** (``MINIATURE``, used by ``analysis/reproduce.py``) continues the demo's base
model for 300 steps on a corpus with the paper's findings planted: three templates in unequal
shares with different slip rates (the template bias), hasty one-line slips that announce
themselves (``Quick sum: 485+742=1117``, so a wrong path is visible to the model when it decides
whether to re-check), more re-checks (the length lever), and 2- and 3-digit operands in equal
shares (an easy and a hard question set).

``build_base_model()`` caches the model under ``$URZ_CACHE`` (default ``~/.cache/understand_r1_zero``)
keyed by a hash of its config and ``CODE_VERSION``; bump ``CODE_VERSION`` when a change here would
change the built model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import re
import time
import zlib
from dataclasses import dataclass

log = logging.getLogger(__name__)

CODE_VERSION = 2
"""Part of the cache key: bump it whenever the corpus, tokenizer or training code changes.
2: same code as 1, but a cache entry under 1 may come from a pre-release revision that built
different weights under the same key (seen on the development box); 2 forces one clean rebuild."""

PHRASINGS = ("What is {a} + {b}?", "Compute {a} + {b}.", "Find the sum of {a} and {b}.")
_PROBLEM = re.compile(r"(\d+)\D+?(\d+)")


@dataclass(frozen=True)
class Demo:
    """The sizes the default run (``train_zero_math.py`` with no flags) uses."""

    n_train: int = 4000
    """RL training prompts."""
    n_eval: int = 200
    """Held-out evaluation problems (greedy accuracy is the demo's headline number)."""
    min_digits: int = 2
    """Fewest digits per operand."""
    max_digits: int = 3
    """Most digits per operand."""
    max_new_tokens: int = 96
    """Enough for any solution with two re-checks."""


DEMO = Demo()


# ------------------------------------------------------------------ the task
def is_held_out(a: int, b: int) -> bool:
    """One problem in ten, fixed by a hash of (a, b): eval problems never reach the corpus."""
    return zlib.crc32(f"{a}+{b}".encode()) % 10 == 0


def _operands(rng: random.Random, min_digits: int, max_digits: int) -> tuple[int, int]:
    # Uniform over the range, so most operands have max_digits digits: ~70% of 3-digit sums have
    # an inner carry (the slip's target), against 45% of 2-digit ones.
    lo, hi = 10 ** (min_digits - 1), 10 ** max_digits - 1
    return rng.randint(lo, hi), rng.randint(lo, hi)


def make_problem(a: int, b: int, phrasing: int = 0) -> dict:
    """One row in the real datasets' schema: ``{"problem": "What is 47 + 385?", "answer": "432"}``."""
    return {"problem": PHRASINGS[phrasing].format(a=a, b=b), "answer": str(a + b)}


def parse_problem(problem: str) -> tuple[int, int]:
    """The two operands of a generated problem."""
    m = _PROBLEM.search(problem)
    if m is None:
        raise ValueError(f"not a synthetic problem: {problem!r}")
    return int(m.group(1)), int(m.group(2))


def make_task(n_train: int = DEMO.n_train, n_eval: int = DEMO.n_eval, seed: int = 0, *,
              min_digits: int = DEMO.min_digits, max_digits: int = DEMO.max_digits
              ) -> tuple[list[dict], list[dict]]:
    """Seeded (train, eval) lists of ``{"problem", "answer"}``, unique within and disjoint across."""
    if n_eval > 10 ** (2 * max_digits) // 20:  # held-out pool: ~1/10 of all pairs
        raise ValueError(f"n_eval={n_eval} is too large for {max_digits}-digit operands")
    rng = random.Random(f"synthetic-task-{seed}")
    seen: set[tuple[int, int]] = set()
    train: list[dict] = []
    evals: list[dict] = []
    while len(train) < n_train or len(evals) < n_eval:
        a, b = _operands(rng, min_digits, max_digits)
        phrasing = rng.randrange(len(PHRASINGS))
        if (a, b) in seen:
            continue
        seen.add((a, b))
        split = evals if is_held_out(a, b) else train
        if len(split) < (n_eval if split is evals else n_train):
            split.append(make_problem(a, b, phrasing))
    return train, evals


def synthetic_datasets(seed: int = 0, n_train: int = DEMO.n_train, n_eval: int = DEMO.n_eval):
    """``make_task`` as two ``datasets.Dataset`` with the real datasets' ``problem``/``answer`` columns."""
    from datasets import Dataset

    train, evals = make_task(n_train, n_eval, seed)
    return Dataset.from_list(train), Dataset.from_list(evals)


# ------------------------------------------------------------------ solutions
def columns(a: int, b: int, *, carry: bool = True) -> list[tuple[int, int, int, int]]:
    """(digit of a, digit of b, carry in, column sum) per column, ones first.

    ``carry=False`` is the planted slip: every carry is dropped."""
    n = max(len(str(a)), len(str(b)))
    out, c = [], 0
    for i in range(n):
        da, db = a // 10 ** i % 10, b // 10 ** i % 10
        s = da + db + c
        out.append((da, db, c, s))
        c = s // 10 if carry else 0
    return out


def column_answer(a: int, b: int, *, carry: bool = True) -> int:
    """The answer column addition gives: ``a + b``, or the slip's wrong answer if ``carry=False``."""
    cols = columns(a, b, carry=carry)
    digits = str(cols[-1][3]) + "".join(str(s % 10) for *_, s in reversed(cols[:-1]))
    return int(digits)


def solution(a: int, b: int, *, carry: bool = True, boxed: bool = True, rechecks: int = 0,
             verbose: bool = False) -> str:
    """One worked solution (no end-of-turn token); its answer is ``column_answer(a, b, carry=carry)``."""
    lines = ["Add the digits column by column, starting from the ones."] if verbose else []
    for da, db, c, s in columns(a, b, carry=carry):
        lines.append(f"{da}+{db}+{c}={s}" if c else f"{da}+{db}={s}")
    return "\n".join(lines + _ending(a, b, column_answer(a, b, carry=carry), boxed=boxed, rechecks=rechecks))


def _ending(a: int, b: int, ans: int, *, boxed: bool, rechecks: int) -> list[str]:
    """A solution's last lines: ``rechecks`` re-check lines, then the answer (boxed or in words)."""
    return [f"Check: {a}+{b}={ans}. Yes."] * rechecks + [f"\\boxed{{{ans}}}" if boxed else f"The answer is {ans}."]


@dataclass(frozen=True)
class Mix:
    """How imperfect the pretraining corpus is (see the module docstring)."""

    slip_prob: float = 0.6
    """Solutions that drop every carry (wrong whenever an inner column carries)."""
    unboxed_prob: float = 0.1
    """Solutions ending in 'The answer is N.' instead of \\boxed{N}."""
    verbose_prob: float = 0.1
    """Solutions opening with a sentence."""
    recheck_prob: float = 0.15
    """Chance of a first re-check line, and of each further one (geometric; mean p / (1 - p))."""
    max_rechecks: int = 8
    """Most re-check lines one solution carries."""
    hasty_marker: str = ""
    """The miniature's hasty writer: a slipped solution skips the columns and writes the
    carry-less sum on one line after this marker, ``Quick sum: 485+742=1117``. The model then sees
    which path it took when it decides whether to re-check, and a wrong response is short, so a
    re-check line changes its length by half (GRPO's 1/|o| then favours it most). Empty (the
    demo): a slip writes the columns without carries."""


def sample_solution(a: int, b: int, rng: random.Random, mix: Mix = Mix()) -> str:
    """One corpus solution: each imperfection drawn independently with the ``mix`` probabilities."""
    rechecks = 0
    while rng.random() < mix.recheck_prob and rechecks < mix.max_rechecks:
        rechecks += 1
    carry = rng.random() >= mix.slip_prob
    boxed = rng.random() >= mix.unboxed_prob
    verbose = rng.random() < mix.verbose_prob
    if mix.hasty_marker and not carry:
        return hasty_solution(a, b, mix.hasty_marker, boxed=boxed, rechecks=rechecks)
    return solution(a, b, carry=carry, boxed=boxed, rechecks=rechecks, verbose=verbose)


def hasty_solution(a: int, b: int, marker: str = "Quick sum:", *, boxed: bool = True, rechecks: int = 0) -> str:
    """The miniature's slipped solution: the marker and the carry-less sum on one line."""
    ans = column_answer(a, b, carry=False)
    return "\n".join([f"{marker} {a}+{b}={ans}"] + _ending(a, b, ans, boxed=boxed, rechecks=rechecks))


def r1_ending(text: str) -> str:
    """A solution rewritten in the r1 template's format: the reasoning, then ``</think>`` and the
    answer in ``<answer>`` tags (the prompt already opened ``<think>``)."""
    *body, last = text.split("\n")
    m = re.fullmatch(r"\\boxed\{(.*)\}|The answer is (.*)\.", last)
    ans = (m.group(1) or m.group(2)) if m else last
    return "\n".join(body) + f" </think> <answer> {ans} </answer>"


# ------------------------------------------------------------------ the base model
@dataclass(frozen=True)
class BaseModelConfig:
    """Everything that determines the built base model; its hash (with CODE_VERSION) is the cache key."""

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    """Head dim = hidden_size / num_heads = 32, the smallest vLLM's CPU attention supports."""
    num_kv_heads: int = 2
    vocab_size: int = 512
    steps: int = 600
    """AdamW steps, fixed rather than a time budget so the build does not depend on the machine.
    600 keeps the one-time build under 4 min on 2 cores (218 s measured); the result is measured,
    not assumed: greedy held-out accuracy 0.28, and RL (the default run) takes it to 0.98. Longer builds
    (1200 steps) make a more careful solver but double the build time of the 10-minute demo."""
    batch_size: int = 64
    learning_rate: float = 3e-3
    """Peak LR (linear warmup, cosine to 10%); 5e-3 learns worse."""
    warmup_steps: int = 30
    template: str = "qwen_math"
    """The prompt the corpus is conditioned on: the demo trains and evaluates with the same one."""
    template_mix: tuple = ()
    """The miniature's planted template bias: ``((template, share, slip_prob), ...)``. Each
    pretraining batch draws one template by share and uses its slip probability (so a template's
    accuracy is planted, not learned by accident). Empty: every example uses ``template``."""
    r1_tag_prob: float = 1.0
    """Share of r1-prompt solutions that close in the r1 format (`` </think> <answer> N </answer>``);
    the rest answer in the habitual ``\\boxed{N}`` the r1 rule does not read (reward 0)."""
    min_digits: int = DEMO.min_digits
    max_digits: int = DEMO.max_digits
    mix: Mix = Mix()
    seed: int = 0
    uniform_digits: bool = False
    """Draw each operand's digit count uniformly first (the miniature: 2-digit sums are half the
    corpus, so its easy question set is in distribution); False: uniform over the numbers."""
    parent: tuple = ()
    """Continue pretraining from another built model instead of from scratch: the ``(field,
    value)`` pairs of its ``BaseModelConfig`` (``(("seed", 1),)`` is the demo's base). Its tokenizer
    is kept. The miniature starts from the demo's base, which already reads and adds digits
    (from scratch, 600 steps over three templates did not get there)."""

    def key(self) -> str:
        fields = dataclasses.asdict(self)
        # the miniature's fields, absent from the demo's key
        for name in ("template_mix", "r1_tag_prob", "uniform_digits", "parent"):
            if getattr(self, name) == getattr(BaseModelConfig, name):
                del fields[name]
        if self.parent:  # the parent's own key: a change to its defaults rebuilds the child too
            fields["parent"] = BaseModelConfig(**dict(self.parent)).key()
        for name in ("max_rechecks", "hasty_marker"):
            if getattr(self.mix, name) == getattr(Mix, name):
                del fields["mix"][name]
        blob = json.dumps([CODE_VERSION, fields], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def default_cache_dir() -> str:
    return os.environ.get("URZ_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                        "understand_r1_zero")


def corpus_examples(cfg: BaseModelConfig, rng: random.Random, n: int) -> list[tuple[str, str]]:
    """n (prompt, response) pairs from the train pool; the response ends with <|im_end|>.

    With ``cfg.template_mix`` all n share one template, drawn by share (one per batch)."""
    from .templates import get_template

    name, mix = cfg.template, cfg.mix
    if cfg.template_mix:
        names, shares, slips = zip(*cfg.template_mix)
        i = rng.choices(range(len(names)), weights=shares)[0]
        name, mix = names[i], dataclasses.replace(cfg.mix, slip_prob=slips[i])
    fmt = get_template(name).format
    out = []
    while len(out) < n:
        if cfg.uniform_digits:
            da, db = rng.randint(cfg.min_digits, cfg.max_digits), rng.randint(cfg.min_digits, cfg.max_digits)
            a, b = rng.randint(10 ** (da - 1), 10 ** da - 1), rng.randint(10 ** (db - 1), 10 ** db - 1)
        else:
            a, b = _operands(rng, cfg.min_digits, cfg.max_digits)
        if is_held_out(a, b):
            continue
        q = make_problem(a, b, rng.randrange(len(PHRASINGS)))["problem"]
        text = sample_solution(a, b, rng, mix)
        if cfg.template_mix and name == "r1" and rng.random() < cfg.r1_tag_prob:
            text = r1_ending(text)
        out.append((fmt(q), text + "<|im_end|>"))
    return out


def _batch(tok, pairs):
    """Right-padded ids / attention mask / labels (-100 outside the response), and the length of
    the token prefix all rows share (the template's system prompt)."""
    import torch

    # Prompt and response are tokenised apart, as the RL sampler sees them.
    rows = [(tok(p, add_special_tokens=False).input_ids, tok(r, add_special_tokens=False).input_ids)
            for p, r in pairs]
    width = max(len(p) + len(r) for p, r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id)  # [batch, width]
    labels = torch.full((len(rows), width), -100)  # [batch, width]
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # [batch, width]
    for i, (p, r) in enumerate(rows):
        n = len(p) + len(r)
        ids[i, :n] = torch.tensor(p + r)
        labels[i, len(p):n] = torch.tensor(r)
        mask[i, :n] = 1
    # At least the last prompt token stays unshared: its logits predict the first response token.
    shared = min(len(p) for p, _ in rows) - 1
    for p, _ in rows:
        shared = next((j for j in range(shared) if p[j] != rows[0][0][j]), shared)
    return ids, mask, labels, shared


def lm_loss(model, ids, mask, labels, shared: int = 0):
    """Mean next-token loss over the labelled tokens.

    The first ``shared`` tokens are identical in every row (the system prompt: a third of each
    sequence), so they run once and their KV cache is repeated over the batch -- the same loss and
    gradients (the cache is differentiable), ~20% less pretraining time."""
    import torch

    if shared <= 1:
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss
    cache = model(input_ids=ids[:1, :shared], use_cache=True).past_key_values
    cache.batch_repeat_interleave(ids.shape[0])
    pos = torch.arange(shared, ids.shape[1]).expand(ids.shape[0], -1)  # [batch, width - shared]
    return model(input_ids=ids[:, shared:], attention_mask=mask, position_ids=pos,
                 past_key_values=cache, labels=labels[:, shared:]).loss


def pretrain(cfg: BaseModelConfig, out_dir: str, *, log_every: int = 100, cache_dir: str | None = None) -> str:
    """Build the tokenizer, train the tiny Qwen2 on the corpus, save it to ``out_dir`` atomically."""
    import torch
    from transformers import GenerationConfig, Qwen2ForCausalLM

    from .tiny import _corpus, build_tokenizer, save_model_dir, tiny_config

    rng = random.Random(f"synthetic-corpus-{cfg.seed}")
    torch.manual_seed(cfg.seed)
    if cfg.parent:
        from transformers import AutoTokenizer

        parent_dir = build_base_model(cache_dir, **dict(cfg.parent))  # the architecture fields are the parent's
        tok = AutoTokenizer.from_pretrained(parent_dir)
        model = Qwen2ForCausalLM.from_pretrained(parent_dir)
        stop_ids = [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    else:
        tok = build_tokenizer(cfg.vocab_size,
                              _corpus() + [p + r for p, r in corpus_examples(cfg, rng, 2000)])
        stop_ids = [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
        mcfg = tiny_config(len(tok), hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                           num_heads=cfg.num_heads, num_kv_heads=cfg.num_kv_heads,
                           eos_token_id=stop_ids, pad_token_id=tok.pad_token_id)
        model = Qwen2ForCausalLM(mcfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.98),
                            weight_decay=0.01)

    def lr_at(step):  # linear warmup, cosine decay to 10% of the peak
        if step < cfg.warmup_steps:
            return cfg.learning_rate * (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.learning_rate * (0.1 + 0.45 * (1 + math.cos(math.pi * t)))

    model.train()
    t0 = time.time()
    for step in range(cfg.steps):
        ids, mask, labels, shared = _batch(tok, corpus_examples(cfg, rng, cfg.batch_size))
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = lm_loss(model, ids, mask, labels, shared)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if log_every and (step % log_every == 0 or step == cfg.steps - 1):
            log.info("pretrain step %d/%d loss %.4f (%.0f s)", step + 1, cfg.steps, loss.item(),
                     time.time() - t0)
    model.eval()
    save_model_dir(model, tok, out_dir,
                   GenerationConfig(eos_token_id=stop_ids, pad_token_id=tok.pad_token_id))
    return out_dir


# The demo's base-model seed. Pretraining is seeded, but its weights also depend on the CPU's
# float rounding, and how fast RL then learns carries depends on the build: on a 2-core Intel Xeon
# box, seed 0 plateaued near 0.5 held-out accuracy (0.28 -> 0.51 at step 20, 0.50 at step 60, for
# run seeds 42, 0 and 1 alike) while seed 1 reached 0.91 at step 10; on the AMD EPYC box of earlier
# sessions seed 0 reached 0.99 by step 20. Seed 1 is the default since; the README has the figures.
DEMO_BASE_SEED = 1


# The miniature (analysis/reproduce.py): the same addition task with findings to reproduce. A
# planted template bias: half the pretraining batches are in the ``no`` template (slip 0.45, so
# greedy decoding takes the careful path), 30% in qwen_math (slip 0.75: greedy takes the slip) and
# 20% in r1, of which only 35% close in the r1 format (greedy answers in \\boxed{}, which the r1
# rule does not read). A slipped solution is hasty -- ``Quick sum: 485+742=1117``, one line -- so
# the model sees which path it took when it decides whether to re-check (recheck_prob 0.3, at most
# 3), and a re-check lengthens a short wrong response by half: the lever GRPO's 1/|o| biases.
MINIATURE = dict(
    template_mix=(("no", 0.5, 0.45), ("qwen_math", 0.3, 0.75), ("r1", 0.2, 0.6)),
    r1_tag_prob=0.35,
    mix=Mix(slip_prob=0.6, recheck_prob=0.3, max_rechecks=3, hasty_marker="Quick sum:"),
    uniform_digits=True,
    parent=(("seed", DEMO_BASE_SEED),),
    steps=300,
    learning_rate=1e-3,
    warmup_steps=10,
)


def build_base_model(cache_dir: str | None = None, seed: int = DEMO_BASE_SEED, *, threads: int = 2,
                     **overrides) -> str:
    """The demo's base model directory: loaded from the cache, or built (~3.6 min on 2 cores) and cached.

    ``overrides`` replace ``BaseModelConfig`` fields; ``mix`` takes a ``Mix`` or a dict of its fields.
    Concurrent builders are safe: each writes a temp dir and renames it into place.
    """
    if isinstance(overrides.get("mix"), dict):
        overrides["mix"] = Mix(**overrides["mix"])
    cfg = BaseModelConfig(seed=seed, **overrides)
    out = os.path.join(cache_dir or default_cache_dir(), f"synthetic_base_{cfg.key()}")
    if os.path.exists(os.path.join(out, "config.json")):
        log.info("loaded the cached synthetic base model from %s", out)
        return out
    log.info("building the synthetic base model (one time; cached at %s)", out)
    t0 = time.time()
    import torch

    before = torch.get_num_threads()  # the caller's setting survives the build
    torch.set_num_threads(threads)
    try:
        pretrain(cfg, out, cache_dir=cache_dir)
    finally:
        torch.set_num_threads(before)
    seconds = time.time() - t0
    with open(os.path.join(out, "synthetic_build.json"), "w") as f:  # provenance, not read back
        json.dump({"config": dataclasses.asdict(cfg), "code_version": CODE_VERSION,
                   "build_seconds": round(seconds, 1)}, f, indent=2)
    log.info("built the synthetic base model in %.0f s -> %s", seconds, out)
    return out


def _cli(cache_dir: str = "", seed: int = 0, threads: int = 2) -> None:
    """Build (or find in the cache) the demo's base model and print its directory."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(build_base_model(cache_dir or None, seed, threads=threads))


if __name__ == "__main__":
    import fire

    fire.Fire(_cli)
