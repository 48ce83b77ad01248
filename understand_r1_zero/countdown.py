r"""The Countdown task (TinyZero, nano-aha-moment): reach a target with each given number once.

  "Using the numbers [19, 36, 55, 7], create an equation that equals 65. You can use basic
  arithmetic operations (+, -, *, /) and each number can only be used once."

A row is ``{"problem": <that text>, "answer": '{"numbers": [19, 36, 55, 7], "target": 65}'}``:
the reference is a JSON string (``json.dumps(..., sort_keys=True)``), so the same column works
through HF datasets and jsonl files. Pair it with the ``countdown`` template (TinyZero's prompt).

Generation (``make_problem``): 3 or 4 numbers in 1..99 (TinyZero's range), combined by a random
expression tree over all of them with + - * /, every intermediate value a positive integer, so
every instance is solvable exactly; the target (its value) is kept in 1..999, redrawn otherwise.
Train and eval are split by a fixed hash of (sorted numbers, target), as in ``synthetic``, so no
seed or size can put an eval instance into training.

Grading (``countdown_reward``): 1.0 iff the extracted answer is an expression that uses exactly
the reference numbers (a multiset: each once, all of them) and equals the target exactly (Fraction
arithmetic, no float tolerance). The expression language, and where it differs from TinyZero's
``re.match(r"^[\d+\-*/().\s]+$")`` + ``eval`` + ``abs(result - target) < 1e-5``:

  * non-negative integer literals, binary ``+ - * /``, parentheses; usual precedence, left
    associative. No decimals (``2.5``), no powers (TinyZero's ``eval`` accepts ``**``), no
    implicit multiplication (``2(3+4)``).
  * **No unary minus** (``-3 + 5``, ``1 - -2``): negation is an extra operation the task does not
    give. TinyZero's ``eval`` allows it; its number check then sees ``3``, so ``-3 + 5`` passes
    there and fails here.
  * Operator spellings a model writes in LaTeX or Unicode are accepted: ``×``, ``·``, ``\times``,
    ``\cdot`` for ``*``; ``÷``, ``\div`` for ``/``; ``−`` (U+2212) and ``–`` for ``-``. Any other
    character (``$``, ``\left``, letters) is a parse error.
  * A trailing ``= N`` is stripped (models often write ``(55 - 36) + 19 + ... = 65``); N must be an
    integer literal, and the answer is correct only if N is the target too. At most one ``=``.
  * Hostile text is cheap to reject: at most ``MAX_CHARS`` characters, ``MAX_DEPTH`` nested
    parentheses and ``MAX_DIGITS`` digits per literal; with no powers, values stay small.

Imports no torch; ``datasets`` only inside ``countdown_datasets``.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from fractions import Fraction

from .math_grader import extract_answer

MIN_NUMBER, MAX_NUMBER = 1, 99  # TinyZero's range
MIN_TARGET, MAX_TARGET = 1, 999
MAX_CHARS = 256  # the longest answer we parse (a 4-number answer is ~25 characters)
MAX_DEPTH = 32  # nested parentheses
MAX_DIGITS = 10  # per integer literal

QUESTION = ("Using the numbers {numbers}, create an equation that equals {target}. You can use "
            "basic arithmetic operations (+, -, *, /) and each number can only be used once.")
REFERENCE_FORM = 'a JSON object {"numbers": [int, ...], "target": int}'


# ------------------------------------------------------------------ the task
def _draw(rng: random.Random, n: int) -> tuple[list[int], int, str]:
    """(numbers, target, a solution): a random expression tree over n numbers whose every
    intermediate value is a positive integer, redrawn until the target is in range."""
    while True:
        numbers = [rng.randint(MIN_NUMBER, MAX_NUMBER) for _ in range(n)]
        pool = [(x, str(x)) for x in numbers]
        while len(pool) > 1:
            i, j = rng.sample(range(len(pool)), 2)  # ordered: a - b and b - a are both tried
            (a, ea), (b, eb) = pool[i], pool[j]
            ops = ["+", "*"] + ["-"] * (a > b) + ["/"] * (a % b == 0)
            op = rng.choice(ops)
            value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
            pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [(value, f"({ea} {op} {eb})")]
        target, expr = pool[0]
        if MIN_TARGET <= target <= MAX_TARGET:
            return numbers, target, expr[1:-1] if n > 1 else expr


def make_reference(numbers: list[int], target: int) -> str:
    """The canonical reference string: ``{"numbers": [...], "target": N}``."""
    return json.dumps({"numbers": list(numbers), "target": target}, sort_keys=True)


def make_problem(rng: random.Random, n_numbers: int | None = None) -> dict:
    """One solvable instance as ``{"problem", "answer"}``; ``n_numbers`` is 3 or 4 uniformly if None."""
    n = rng.choice((3, 4)) if n_numbers is None else n_numbers
    if n < 2:
        raise ValueError(f"n_numbers={n_numbers}: a Countdown instance needs at least 2 numbers")
    numbers, target, _ = _draw(rng, n)
    return {"problem": QUESTION.format(numbers=numbers, target=target),
            "answer": make_reference(numbers, target)}


def _key(row: dict) -> tuple[tuple[int, ...], int]:
    numbers, target = parse_reference(row["answer"])
    return tuple(sorted(numbers)), target


def is_held_out(key: tuple[tuple[int, ...], int]) -> bool:
    """One instance in ten, fixed by a hash of (sorted numbers, target)."""
    return zlib.crc32(repr(key).encode()) % 10 == 0


def make_task(n_train: int = 2000, n_eval: int = 200, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Seeded (train, eval) lists of ``{"problem", "answer"}``, unique within and disjoint across
    (no (numbers multiset, target) pair is in both, for any seeds)."""
    rng = random.Random(f"countdown-task-{seed}")
    seen: set = set()
    train: list[dict] = []
    evals: list[dict] = []
    while len(train) < n_train or len(evals) < n_eval:
        row = make_problem(rng)
        key = _key(row)
        if key in seen:
            continue
        seen.add(key)
        split, size = (evals, n_eval) if is_held_out(key) else (train, n_train)
        if len(split) < size:
            split.append(row)
    return train, evals


def countdown_datasets(seed: int = 0, n_train: int = 2000, n_eval: int = 200):
    """``make_task`` as two ``datasets.Dataset`` with ``problem``/``answer`` columns."""
    from datasets import Dataset

    train, evals = make_task(n_train, n_eval, seed)
    return Dataset.from_list(train), Dataset.from_list(evals)


def parse_reference(reference) -> tuple[list[int], int]:
    """(numbers, target) from a reference: the JSON string or an already-parsed dict."""
    shown = repr(reference) if len(repr(reference)) <= 80 else repr(reference)[:77] + "..."
    ref = reference
    if isinstance(ref, str):
        try:
            ref = json.loads(ref)
        except json.JSONDecodeError:
            raise ValueError(f"countdown reference {shown} is not JSON; expected {REFERENCE_FORM}") from None
    if not isinstance(ref, dict):
        raise ValueError(f"countdown reference {shown} is not an object; expected {REFERENCE_FORM}")
    numbers, target = ref.get("numbers"), ref.get("target")

    def is_int(x):  # bool is an int subclass; True is not a number here
        return isinstance(x, int) and not isinstance(x, bool)

    if not (isinstance(numbers, list) and numbers and all(is_int(x) and x >= 0 for x in numbers)
            and is_int(target)):
        raise ValueError(f"countdown reference {shown} needs non-negative integer numbers and an "
                         f"integer target; expected {REFERENCE_FORM}")
    return list(numbers), target


# ------------------------------------------------------------------ the expression language
class DivisionByZero(ValueError):
    """The expression is well formed but divides by zero."""


_TOKEN = re.compile(r"\s*(?:([0-9]+)|(\\times|\\cdot|\\div|[-+*/()×·÷−–]))")
_SPELLING = {"\\times": "*", "\\cdot": "*", "×": "*", "·": "*", "\\div": "/", "÷": "/",
             "−": "-", "–": "-"}


def _tokens(expr: str) -> list[str]:
    """Integer literals and the operators ``+ - * / ( )``, alternative spellings normalised."""
    if not isinstance(expr, str):
        raise ValueError("not a string")
    if len(expr) > MAX_CHARS:  # before any work: a 1 MB answer costs nothing
        raise ValueError(f"longer than {MAX_CHARS} characters")
    out, pos, end = [], 0, len(expr.rstrip())
    while pos < end:
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"unexpected character {expr[pos:].lstrip()[:1]!r}")
        number, op = m.groups()
        if number is not None and len(number) > MAX_DIGITS:
            raise ValueError(f"a literal longer than {MAX_DIGITS} digits")
        out.append(number if number is not None else _SPELLING.get(op, op))
        pos = m.end()
    if not out:
        raise ValueError("empty expression")
    return out


def _parse(expr: str) -> tuple[Fraction | None, list[int]]:
    """(value, literals in order) by recursive descent; value None means a division by zero.

    Grammar: ``expr := term (('+'|'-') term)*``, ``term := factor (('*'|'/') factor)*``,
    ``factor := INT | '(' expr ')'``. A division by zero does not stop the parse, so a syntax
    error later in the text is still reported as one.
    """
    toks = _tokens(expr)
    literals: list[int] = []
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def factor(depth):
        nonlocal pos
        t = peek()
        if t is None:
            raise ValueError("ends where a number was expected")
        pos += 1
        if t.isdigit():
            literals.append(int(t))
            return Fraction(int(t))
        if t == "(":
            if depth >= MAX_DEPTH:
                raise ValueError(f"parentheses nested deeper than {MAX_DEPTH}")
            value = expression(depth + 1)
            if peek() != ")":
                raise ValueError("unbalanced parentheses")
            pos += 1
            return value
        if t == "-":
            raise ValueError("unary minus is not allowed")
        raise ValueError(f"expected a number or '(' but found {t!r}")

    def term(depth):
        nonlocal pos
        value = factor(depth)
        while peek() in ("*", "/"):
            op = toks[pos]
            pos += 1
            right = factor(depth)
            if value is None or right is None or (op == "/" and right == 0):
                value = None
            else:
                value = value * right if op == "*" else value / right
        return value

    def expression(depth):
        nonlocal pos
        value = term(depth)
        while peek() in ("+", "-"):
            op = toks[pos]
            pos += 1
            right = term(depth)
            if value is not None and right is not None:
                value = value + right if op == "+" else value - right
            else:
                value = None
        return value

    value = expression(0)
    if pos < len(toks):
        raise ValueError("unbalanced parentheses" if toks[pos] == ")" else
                         f"unexpected {toks[pos]!r} after a complete expression")
    return value, literals


def evaluate_expression(expr: str) -> Fraction:
    """The exact value of ``expr`` (see the module docstring for the language).

    Raises ``ValueError`` with a short reason on anything else, ``DivisionByZero`` (a
    ``ValueError``) when a well-formed expression divides by zero. Never calls ``eval``."""
    value, _ = _parse(expr)
    if value is None:
        raise DivisionByZero("division by zero")
    return value


def numbers_used(expr: str) -> list[int]:
    """The integer literals of ``expr`` in order (``ValueError`` if it does not parse; a division
    by zero is fine here)."""
    return _parse(expr)[1]


def _split_equation(answer: str) -> tuple[str, int | None]:
    """``"expr = N"`` -> (expr, N); no ``=`` -> (answer, None). N must be one integer literal."""
    if "=" not in answer:
        return answer, None
    expr, _, claimed = answer.partition("=")
    if "=" in claimed:
        raise ValueError("more than one '='")
    claimed = claimed.strip()
    if not claimed.isdigit() or not claimed.isascii():
        raise ValueError("the right of '=' must be an integer")
    if len(claimed) > MAX_DIGITS:
        raise ValueError(f"a literal longer than {MAX_DIGITS} digits")
    return expr, int(claimed)


# ------------------------------------------------------------------ the reward
def countdown_reward(response: str, reference, template: str = "countdown",
                     format_reward: float = 0.0) -> tuple[float, dict]:
    """``(reward, info)`` for one response, in the shape of ``math_grader.reward_fn``.

    The answer is extracted by the template's rule (``<answer>..</answer>`` after ``</think>`` for
    ``countdown``; TinyZero does not require the ``</think>``). reward 1.0 iff it is correct (see
    the module docstring), else ``format_reward`` if an answer was extracted, else 0.0. info:
    ``formatted``, ``answer`` (extracted, or None), ``correct``, ``timeout`` (always False: parsing
    is linear and capped), ``reason`` (``"ok"``, ``"no answer"``, ``"parse error: ..."``,
    ``"numbers: ..."``, ``"division by zero"``, ``"value: ..."``). Never raises on model text;
    a malformed reference raises ``ValueError``.
    """
    numbers, target = parse_reference(reference)
    answer = extract_answer(response, template)
    info = {"formatted": answer is not None, "answer": answer, "correct": False, "timeout": False,
            "reason": "no answer"}
    if answer is None:
        return 0.0, info
    try:
        if len(answer) > MAX_CHARS:  # _split_equation would scan it
            raise ValueError(f"longer than {MAX_CHARS} characters")
        expr, claimed = _split_equation(answer)
        value, used = _parse(expr)
    except ValueError as e:
        info["reason"] = f"parse error: {e}"
    else:
        if sorted(used) != sorted(numbers):
            info["reason"] = f"numbers: used {sorted(used)}, expected {sorted(numbers)}"
        elif value is None:
            info["reason"] = "division by zero"
        elif value != target:
            info["reason"] = f"value: {value} != target {target}"
        elif claimed is not None and claimed != target:
            info["reason"] = f"value: claims {claimed}, target {target}"
        else:
            info["correct"], info["reason"] = True, "ok"
    return (1.0 if info["correct"] else format_reward), info
