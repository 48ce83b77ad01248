"""Prompt templates: the one source of truth for training, evaluation and analysis.

A template is three things (Dr. GRPO, arXiv 2503.20783, Sec. 3.1 studies their effect):
  * ``format(question) -> prompt``: the text the model is conditioned on;
  * ``stop``: stop strings for the sampler (``include_stop`` says whether the
    stop string is kept in the response -- r1 must keep ``</answer>`` so the
    grader can find the closing tag);
  * ``extraction``: which rule the grader uses to pull out the final answer,
    ``"boxed"`` (last ``\\boxed{}``) or ``"answer_tag"`` (last ``<answer>..</answer>``
    after ``</think>``, a ``\\boxed{}`` inside it taking precedence).

``qwen_math``, ``r1`` and ``no`` are the training templates of the paper; ``countdown`` is
TinyZero's prompt for the Countdown task (``understand_r1_zero.countdown``). The rest are
evaluation-only baselines, as in understand-r1-zero's ``evaluate_model.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

BOXED = "boxed"
ANSWER_TAG = "answer_tag"


@dataclass(frozen=True)
class Template:
    name: str
    format: Callable[[str], str]
    stop: tuple[str, ...]
    include_stop: bool
    extraction: str  # BOXED or ANSWER_TAG
    train: bool  # usable for RL training (the others are evaluation baselines)

    def __call__(self, question: str) -> str:
        return self.format(question)


def _qwen_math(q: str) -> str:
    return (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within "
        "\\boxed{}.<|im_end|>\n<|im_start|>user\n" + q + "<|im_end|>\n<|im_start|>assistant\n"
    )


def _r1(q: str) -> str:
    return (
        "A conversation between User and Assistant. The User asks a question, and the Assistant "
        "solves it. The Assistant first thinks about the reasoning process in the mind and then "
        "provides the User with the answer. The reasoning process is enclosed within <think> "
        "</think> and answer is enclosed within <answer> </answer> tags, respectively, i.e., "
        "<think> reasoning process here </think> <answer> answer here </answer>.\nUser: "
        + q + "\nAssistant: <think>"
    )


def _countdown(q: str) -> str:
    # TinyZero's base-model prompt for Countdown (verl/examples/data_preprocess/countdown.py),
    # word for word: lower-case "user"/"assistant", and the response starts inside <think>.
    return (
        "A conversation between User and Assistant. The user asks a question, and the Assistant "
        "solves it. The assistant first thinks about the reasoning process in the mind and then "
        "provides the user with the answer.\nUser: " + q + " Show your work in <think> </think> "
        "tags. And return the final answer in <answer> </answer> tags, for example <answer> "
        "(1 + 2) / 3 </answer>.\nAssistant: Let me solve this step by step.\n<think>"
    )


def _no(q: str) -> str:
    return q


def _prime_zero(q: str) -> str:
    q = q + "\n\nPresent the answer in LaTex format: \\boxed{Your answer}"
    return (
        "A conversation between User and Assistant. The user asks a question, and the Assistant "
        "solves it. The assistant first thinks about the reasoning process in the mind and then "
        f"provides the user with the answer. User: {q}. Assistant:"
    )


def _open_reasoner_zero(q: str) -> str:
    instruction = (
        "You must put your answer inside <answer> </answer> tags, i.e., <answer> answer here "
        "</answer>. And your final answer will be extracted automatically by the \\boxed{} tag.\n"
        f"This is the problem:\n{q}\n"
    )
    return (
        "A conversation between User and Assistant. The User asks a question, and the Assistant "
        "solves it. The Assistant first thinks about the reasoning process in the mind and then "
        "provides the User with the answer. The reasoning process is enclosed within <think> "
        "</think> and answer is enclosed within <answer> </answer> tags, respectively, i.e., "
        "<think> reasoning process here </think> <answer> answer here </answer>. User: "
        f"{instruction}\nAssistant: <think>"
    )


def _llama_instruct(q: str) -> str:
    # Llama-3 chat format written out, so no tokenizer (and no hub) is needed.
    return (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
        "Solve the following math problem efficiently and clearly:\n\n"
        "- For simple problems (2 steps or fewer):\nProvide a concise solution with minimal explanation.\n\n"
        "- For complex problems (3 steps or more):\nUse this step-by-step format:\n\n"
        "## Step 1: [Concise description]\n[Brief explanation and calculations]\n\n"
        "## Step 2: [Concise description]\n[Brief explanation and calculations]\n\n...\n\n"
        "Regardless of the approach, always conclude with:\n\n"
        "Therefore, the final answer is: $\\boxed{answer}$. I hope it is correct.\n\n"
        "Where [answer] is just the final number or expression that solves the problem.\n\n"
        f"Problem: {q}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def _r1_distill(q: str) -> str:
    return (
        "<｜begin▁of▁sentence｜><｜User｜>" + q
        + "\nPlease reason step by step, and put your final answer within \\boxed{}.<｜Assistant｜><think>\n"
    )


_CHAT_STOPS = ("<|im_end|>", "<|endoftext|>", "</s>")

TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        Template("qwen_math", _qwen_math, _CHAT_STOPS, False, BOXED, True),
        Template("r1", _r1, ("</answer>",), True, ANSWER_TAG, True),
        Template("no", _no, _CHAT_STOPS, False, BOXED, True),
        Template("countdown", _countdown, ("</answer>",), True, ANSWER_TAG, True),
        Template("prime_zero", _prime_zero, _CHAT_STOPS, False, BOXED, False),
        Template("open_reasoner_zero", _open_reasoner_zero, ("</answer>",), True, ANSWER_TAG, False),
        Template("llama_instruct", _llama_instruct, ("<|eot_id|>", "<|end_of_text|>"), False, BOXED, False),
        Template("r1_distill", _r1_distill, ("<｜end▁of▁sentence｜>",), False, BOXED, False),
    ]
}


def get_template(name: str, *, for_training: bool = False) -> Template:
    """Look a template up by name (``-`` and ``_`` are interchangeable: ``prime-zero`` works)."""
    key = str(name).strip().replace("-", "_")
    if key not in TEMPLATES:
        raise ValueError(
            f"unknown prompt template {name!r}; valid names: {', '.join(TEMPLATES)}"
        )
    t = TEMPLATES[key]
    if for_training and not t.train:
        valid = ", ".join(n for n, x in TEMPLATES.items() if x.train)
        raise ValueError(
            f"template {name!r} is an evaluation-only baseline; training templates: {valid}"
        )
    return t


def few_shot(examples: list[tuple[str, str]], base: str = "no") -> Template:
    """A k-shot template: ``examples`` are (question, worked solution ending in \\boxed{}) pairs,
    prepended to the question in the ``base`` template's format (used by analysis/template_effects)."""
    inner = get_template(base)
    shots = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in examples)

    def fmt(q: str) -> str:
        return inner.format(shots + f"Question: {q}\nAnswer:")

    stop = tuple(dict.fromkeys(inner.stop + ("\n\nQuestion:",)))
    return Template(f"{len(examples)}shot_{inner.name}", fmt, stop, False, BOXED, False)
