r"""The math grader: the whole RL reward. Extract the final answer, normalise, compare.

``reward_fn`` grades one response in the calling process; ``grade_batch`` grades a batch,
resolving the easy items in-process and sending the rest to a pool of worker processes that
are killed when an item runs past its time limit. Papers cite numbers computed here, so the
policy is written down below, and each line of it is a test in ``tests/test_math_grader.py``.

Extraction (``extract_answer``)
  * boxed templates (qwen_math, no, r1_distill, ...): the content of the last top-level
    ``\boxed{..}`` / ``\fbox{..}`` (also ``\boxed 5``), braces balanced. If that last box is
    unclosed (a truncated response) the response is unformatted: we do not fall back to an
    earlier box, because "the last box wins" must not depend on where generation stopped.
  * answer_tag templates (r1, open_reasoner_zero): the last complete ``<answer>..</answer>``
    after the first ``</think>`` (the opening ``<think>`` is in the prompt); a ``\boxed{}``
    inside it takes precedence. No ``</think>`` means unformatted (as in understand-r1-zero,
    which is strict about the r1 format).
  * ``formatted`` means a non-empty answer was extracted. Unformatted responses score 0.

Equal (``is_equiv(given, reference)``)
  * after normalisation: ``\left``/``\right``, ``\dfrac``/``\tfrac``, spacing commands,
    ``$``, ``\%``, degrees, a trailing ``\text{unit}`` or plain unit word after a number,
    thousands separators (``10,080``, ``10,\!080``, ``10{,}080``, ``10\,080``), ``\frac12``,
    ``\sqrt2``, ``\text{..}`` wrappers, a trailing full stop.
  * numbers exactly: integers, decimals, fractions, ``a/b``, mixed numbers (``1\frac45``) and
    repeating decimals (``0.\overline{3}``) are exact rationals. There is NO float tolerance:
    ``0.3333`` is not ``1/3``. Decimals are made exact before sympy sees them, so a rounded
    decimal never equals an irrational either (``1.414`` is not ``\sqrt2``).
  * expressions by value (sympy, via math-verify's LaTeX parser latex2sympy2_extended): the
    difference is indistinguishable from zero (read at 30 digits, confirmed at 150) at four
    sample points with mixed signs, every variable its own value (one point for a
    constant), and a certified nonzero value there makes them unequal; so a difference below
    about 10^-150 of the terms counts as zero (``\sqrt{10^{400}+1}`` = ``10^{200}``). Where
    a point cannot be evaluated, or either side has a piecewise function (floor, ceil, abs,
    sign, mod, min, max: ``\lfloor x\rfloor+1`` and ``\lceil x\rceil`` agree at every
    non-integer), only ``simplify(a - b) == 0`` makes them equal, on a small difference only
    (``_same_value``; simplify took 7-11 s on two spellings of one nested radical). Powers and factorials evaluate (``2^{10}`` = ``1024``), ``i``
    is the imaginary unit, symbols are case-sensitive. Unevaluated sums, products, integrals
    and limits are equal only to the same expression up to argument order.
  * ``v = X`` (``v`` a single variable or ``f(x)``) equals ``X`` on either side; so does a
    named quantity with a variable-free value: a tuple of variables or a name in capitals,
    ``(p,q)=(3,2)``, ``|AB|=1``, ``V_1:V_2=11:21``, ``\frac{NO}{BO}=..`` (but ``x+y=1``,
    ``xy=6`` and ``|z|=1`` are equations, not ``1`` or ``6``). A list of assignments is a list
    of solutions, one tuple per repetition of the names: ``p=5,q=2;p=7,q=2`` =
    ``(5,2),(7,2)``; a named reference is ordered, ``AB=4,CD=5`` = ``(4,5)``, not ``5,4``;
    one named solution given for an unnamed reference is a bare list (``x_1=3,x_2=2`` = the
    roots ``2,3``); when both sides are named, the names are matched (``y=2,x=1`` =
    ``x=1,y=2`` = ``(x,y)=(1,2)``). Two equations are equal up to a nonzero
    constant factor (lines and planes), so ``x=5`` is not ``y=5``.
  * ordered: ``(..)`` / ``[..]`` tuples and intervals, element by element, brackets must match
    (open vs closed ends). Unordered: ``\{..\}`` sets, bare comma lists (lists of solutions;
    a semicolon separates too), ``\cup`` unions, and ``a \pm b`` (which expands to the list
    ``a+b, a-b``). A bare list against a ``( )`` tuple, either way round, is compared in
    order: ``(1,-2)`` = ``1,-2``, but ``(-2,1)`` (an ordered pair, or an interval) is not the
    solution list ``1,-2``. Only two unordered kinds compare unordered. A solution listed
    twice counts once, unless the reference repeats one itself (then multiplicity counts);
    a given list over twice the reference's length is unequal at once.
    Inequalities in one variable, its negative or its absolute value are intervals (``x>3``
    = ``x \gt 3`` = ``(3,\infty)``, ``-x>-1`` = ``x<1``, ``1\le|z|\le2`` = ``[-2,-1]\cup[1,2]``);
    ``x \in`` is dropped.
  * matrices (pmatrix / bmatrix / matrix / array) element by element; never equal to a tuple.
  * choice letters A-E: ``C`` = ``(C)`` = ``\text{(C)}`` = ``c`` = ``\textbf{(C)}\ 12`` =
    ``C. x = 42``; the reference decides that the answer is a letter, and then only the same
    letter counts; an answer naming several letters (``(A),(B)``, ``A. B. C.``) names none.
    A reference that is a letter with its math (``C. x = 42``, ``(C) 12``) accepts the letter
    or the math; ``E. coli`` is a text answer, not a choice.
  * text answers (letters only, a run of at least two) case-insensitively, ignoring spaces
    and full stops: ``\text{East}`` = ``east``. A text answer never equals a non-text one.
  * base subscripts are dropped (``204_5`` = ``204``): the digits must match; the same number
    written in base 10 (``54``) does not count, since the question asked for base 5.
  * percent is a unit and is dropped (``15\%`` = ``15``); ``0.15`` is not ``15\%``.

Not equal, deliberately: off-by-one, sign flips, rounded decimals vs exact values, partial
answers, swapped ordered pairs, a trailing variable (``2a`` vs ``2``), two numbers vs one
(``32, 349`` vs ``32349``: a comma followed by a space is a separator, never thousands).

Cost guard: answers longer than ``MAX_ANSWER_CHARS`` are compared as raw strings, and strings
that would make sympy hang or explode (longer than ``MAX_SYMPY_CHARS``, power towers,
exponents over 1e5 (over 100 on a non-numeric base), factorials/binomials of 5-digit literals,
unevaluated sums/products/integrals/limits) never reach sympy: they are equal only if they
are the same string after normalisation. This static guard is a heuristic, and it is all that
protects ``reward_fn``, ``is_equiv`` and ``num_workers=0``; ``grade_batch``'s real guard is
the worker kill.

Why not ``math_verify.verify``: its float tolerance makes ``0.333333`` equal ``1/3``, its unit
list strips single letters (``2d`` == ``2``), and its ``signal.alarm`` timeouts fail off the
main thread (and would cancel pytest-timeout's alarm). We use its parser and our own exact
comparison; ``benchmarks/bench_grader.py`` measures both, on MATH500 and on 259 cases from
other projects' test suites (``../shared/data/grader_external``), where float tolerance is
the one policy we decline (those cases were left out of the suite as policy-dependent).
"""

from __future__ import annotations

import atexit
import cmath
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections import deque
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from multiprocessing.connection import wait as _wait_readable

from understand_r1_zero.templates import ANSWER_TAG, get_template

MAX_ANSWER_CHARS = 1000  # longer answers are compared as raw strings (no answer is this long)
MAX_SYMPY_CHARS = 300  # longer strings never reach sympy
DEFAULT_TIMEOUT_S = 10.0  # per item, in grade_batch

# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BRACE_TOKEN = re.compile(r"\\.|[{}]", re.S)
_BARE_TOKEN = re.compile(r"[^\s$]+")
_THINK_END = re.compile(r"<\s*/\s*think\s*>", re.I)
_ANS_OPEN = re.compile(r"<\s*answer\s*>", re.I)
_ANS_CLOSE = re.compile(r"<\s*/\s*answer\s*>", re.I)


def _close_brace(s: str, i: int) -> int:
    r"""Index of the ``}`` closing the ``{`` at ``s[i]``, or -1. ``\{``/``\}`` are literal."""
    depth = 0
    for m in _BRACE_TOKEN.finditer(s, i):
        t = m.group()
        if t == "{":
            depth += 1
        elif t == "}":
            depth -= 1
            if depth == 0:
                return m.start()
    return -1


def _last_boxed(s: str) -> str | None:
    """Content of the last top-level box; None if there is none or it is unclosed/empty.

    One left-to-right pass (linear even for 1 MB or 10k nested braces): each closed box is
    skipped whole, so boxes nested inside it are not "later" boxes.
    """
    last, pos, n = None, 0, len(s)
    while (m := _BOX.search(s, pos)) is not None:
        k = m.end()
        while k < n and s[k].isspace():
            k += 1
        if k < n and s[k] == "{":
            end = _close_brace(s, k)
            if end < 0:
                return None  # truncated inside the last box
            last, pos = s[k + 1:end], end + 1
        else:  # "\boxed 5" form
            t = _BARE_TOKEN.match(s, k)
            if t is None:
                return None
            last, pos = t.group(), t.end()
    for _ in range(3):  # \boxed{\boxed{3}}
        if last is None or _BOX.search(last) is None:
            break
        last = _last_boxed(last)
    return (last.strip() or None) if last is not None else None


def _answer_tag(s: str) -> str | None:
    think = _THINK_END.search(s)
    if think is None:
        return None
    close = None
    for close in _ANS_CLOSE.finditer(s, think.end()):
        pass
    if close is None:
        return None
    opening = None
    for opening in _ANS_OPEN.finditer(s, think.end(), close.start()):
        pass
    if opening is None:
        return None
    content = s[opening.end():close.start()]
    if _BOX.search(content):
        return _last_boxed(content)
    return content.strip() or None


def extract_answer(response: str, template: str = "qwen_math") -> str | None:
    """The final answer by the template's extraction rule, or None (unformatted)."""
    rule = get_template(template).extraction
    if not isinstance(response, str):
        return None
    return _answer_tag(response) if rule == ANSWER_TAG else _last_boxed(response)


# ---------------------------------------------------------------------------------------------
# Normalisation (pure string work: linear regexes on at most MAX_ANSWER_CHARS, cannot hang)
# ---------------------------------------------------------------------------------------------

_UNICODE = str.maketrans({
    "\u2212": "-", "\u2013": "-", "\u00d7": r"\times ", "\u00b7": r"\cdot ", "\u00f7": r"\div ",
    "\u03c0": r"\pi ", "\u221a": r"\sqrt", "\u221e": r"\infty ", "\u2264": r"\le ",
    "\u2265": r"\ge ", "\u00b1": r"\pm ", "\u2213": r"\mp ", "\u222a": r"\cup ", "\u00b0": "",
    "\u2009": " ", "\u00a0": " ", "\u202f": " ",
})
_CTRL = re.compile(r"[\x00-\x1f\x7f]")
_NOT_LETTER = r"(?![A-Za-z])"
_SUBS = [(re.compile(p), r) for p, r in [
    (r"\\(?:left|right)\.", ""),
    (r"\\(?:left|right|[bB]igg?[lr]?|middle)" + _NOT_LETTER, ""),
    (r"\\(?:displaystyle|textstyle|scriptstyle)" + _NOT_LETTER, ""),
    (r"\\(?:hspace|vspace|phantom)\*?\{[^{}]*\}", ""),
    (r"\\[dtc]frac" + _NOT_LETTER, r"\\frac"),
    (r"\\lbrace" + _NOT_LETTER, r"\\{"), (r"\\rbrace" + _NOT_LETTER, r"\\}"),
    (r"\\langle" + _NOT_LETTER, "("), (r"\\rangle" + _NOT_LETTER, ")"),
    (r"\\(?:leqslant|leq|le)" + _NOT_LETTER + "|<=", r"\\le "),
    (r"\\(?:geqslant|geq|ge)" + _NOT_LETTER + "|>=", r"\\ge "),
    (r"\\lt" + _NOT_LETTER, "<"), (r"\\gt" + _NOT_LETTER, ">"),
    (r"\\[lr]?vert" + _NOT_LETTER, "|"),
    (r"\\infinity|\\inf(?![A-Za-z])|(?<![A-Za-z\\])inf(?:inity)?(?![A-Za-z])", r"\\infty "),
    (r"\\mathbb\{R\}", r"(-\\infty,\\infty)"),
    (r"\^\s*\{?\s*\\circ\s*\}?|\\degree[s]?" + _NOT_LETTER, ""),
    (r"\\?%", ""),
    (r"\\?\$", ""),
    (r"(?<!\\)\\[()\[\]]", ""),  # \( \) \[ \] math delimiters, not a matrix row's \\[
]]
# "10,\!080", "10{,}080", "10\,080": explicit thousands separators (a 3-digit group follows)
_THOUSANDS_MARK = re.compile(r"(?<=\d)(?:,\s*\\!\s*|\{,\}|\\,|\\!)(?=\d{3}(?!\d))")
_THOUSANDS_PLAIN = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")  # whole answer, no spaces
_TEXT_CMD = (r"\\(?:text|textbf|textit|textrm|textnormal|textsf|texttt|mbox|mathrm|mathbf|mathit"
             r"|mathsf|operatorname)")
_UNIT_TAIL = re.compile(_TEXT_CMD + r"\s*\{\s*([A-Za-z][A-Za-z .]*)\}\s*(?:\^\s*\{?\s*[23]\s*\}?)?\s*$")
_TEXT_WRAP = re.compile(_TEXT_CMD + r"\s*\{([^{}]*)\}")
_WORD_UNIT = re.compile(r"(?<=[\d}])\s+[A-Za-z]{2,}(?:[\s.]+[A-Za-z]+)*\.?\s*(?:\^\s*\{?[23]\}?)?\s*$")
_AND_OR = re.compile(r"\s*,?\s+(?:and|or)\s+|(?<=[)\]}])\s*(?:and|or)\s*(?=[(\[{\\])")  # "(11,7)or(7,11)"
_SPACING = re.compile(r"(?<!\\)\\[!,;: ]|\\q?quad" + _NOT_LETTER + "|~|\\s+")
_DIGIT_SPACE = re.compile(r"(?<=\d)\s+(?=\d)")  # "32 349" is two numbers, never 32349
_SPACE = re.compile(r"(?<![A-Za-z])\s+|\s+(?![A-Za-z])")  # keep "\cot x", "New York"
_SQRT = re.compile(r"\\sqrt\s*(\\[A-Za-z]+|[0-9A-Za-z])")
_OVERLINE = re.compile(r"\\overline\s*(\d)")
_BASE_SUB = re.compile(r"(?<![A-Za-z0-9\\.])(\d+)_\{?\d{1,2}\}?")
_PLUS_INF = re.compile(r"(^|[(\[,])\+\\infty")
_CMD = re.compile(r"\\[A-Za-z]+")


def _fix_fracs(s: str) -> str:
    r"""``\frac12`` -> ``\frac{1}{2}``, ``\frac{270}7`` -> ``\frac{270}{7}`` (TeX's one-token args)."""
    out, i = [], 0
    while (j := s.find(r"\frac", i)) >= 0:
        out.append(s[i:j + 5])
        k = j + 5
        for _ in range(2):
            while k < len(s) and s[k] == " ":
                k += 1
            if k >= len(s):
                break
            if s[k] == "{":
                e = _close_brace(s, k)
                if e < 0:
                    break
                out.append("{" + _fix_fracs(s[k + 1:e]) + "}")  # \frac{\frac12}{3}
                k = e + 1
            else:
                m = _CMD.match(s, k)
                tok = m.group() if m else s[k]
                out.append("{" + tok + "}")
                k += len(tok)
        i = k
    out.append(s[i:])
    return "".join(out)


def _strip_outer_braces(s: str) -> str:
    while len(s) > 1 and s[0] == "{" and _close_brace(s, 0) == len(s) - 1:
        s = s[1:-1]
    return s


def _canon(s: str) -> str:
    """The normal form two answers are compared in (see the module docstring)."""
    s = s.strip()
    return s if len(s) > MAX_ANSWER_CHARS else _canon_short(s)  # long: raw string only


@lru_cache(maxsize=1 << 14)
def _canon_short(s: str) -> str:
    s = _CTRL.sub(" ", s).translate(_UNICODE).strip()
    for pat, rep in _SUBS:
        s = pat.sub(rep, s)
    s = _THOUSANDS_MARK.sub("", s)
    for _ in range(3):  # "864 \mbox{ inches}^2", "\frac{270}7\text{ degrees}"
        m = _UNIT_TAIL.search(s)
        if m is None or not s[:m.start()].strip() or m.group(1).strip() in ("i", "e"):
            break
        s = s[:m.start()]
    for _ in range(3):
        s = _TEXT_WRAP.sub(r"\1", s)
    s = _WORD_UNIT.sub("", s)
    s = _AND_OR.sub(",", s)
    s = _SPACING.sub(" ", s).strip()
    s = _SQRT.sub(r"\\sqrt{\1}", _fix_fracs(s))  # before spaces go: "\frac 1 2", "\sqrt 2"
    if _THOUSANDS_PLAIN.fullmatch(s):  # "58,500", never "32, 349"
        s = s.replace(",", "")
    s = _DIGIT_SPACE.sub(",", s)
    s = _SPACE.sub("", s)
    s = _OVERLINE.sub(r"\\overline{\1}", s)
    s = _BASE_SUB.sub(r"\1", s)
    s = _PLUS_INF.sub(r"\1\\infty", s)
    s = s.rstrip(".,;:").replace(";", ",")  # "(0;-2;6)", "-12;-11": a semicolon separates
    return _strip_outer_braces(s)


# ---------------------------------------------------------------------------------------------
# The fast, decisive checks: exact numbers, choice letters, text (no sympy, cannot hang)
# ---------------------------------------------------------------------------------------------

_NUM = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?"  # 1e999999999 would hang Fraction()
_RE_NUM = re.compile(_NUM)
_RE_SLASH = re.compile(rf"({_NUM})/({_NUM})")
_RE_FRAC = re.compile(rf"([+-]?)\\frac\{{({_NUM})\}}\{{({_NUM})\}}")
_RE_MIXED = re.compile(r"([+-]?)(\d+)\\frac\{(\d+)\}\{(\d+)\}")
_RE_REPEAT = re.compile(r"([+-]?)(\d*)\.(\d*)\\overline\{(\d+)\}")
_RE_CHOICE_REF = re.compile(r"\(?([A-E])\)?")
_RE_CHOICE = re.compile(r"\(?([A-Ea-e])\)?|\(([A-Ea-e])\).*|([A-E])\..*")  # "(C)", "C", "\textbf{(C)}\ 12", "C. 12"
_RE_CHOICE_TEXT = re.compile(r"\(([A-E])\)(.+)|([A-E])\.(.+)")  # a reference "C. x = 42" or "(C) 12"
_RE_CHOICE_MARK = re.compile(r"\([A-Ea-e]\)|(?<![A-Za-z\\])[A-E]\.")  # "(C)", "C." anywhere


def _choice(g: str) -> str | None:
    """The one choice letter a given answer names (``C``, ``(c)``, ``(C) 12``, ``C. x = 42``);
    None if it names none, or several (a hedge such as ``(A),(B),(C)`` or ``A. B. C.``)."""
    c = _RE_CHOICE.fullmatch(g)
    if c is None or len(_RE_CHOICE_MARK.findall(g)) > 1:
        return None
    return (c[1] or c[2] or c[3]).upper()


def _choice_text(r: str):
    """A reference that is a letter with its option text (``C. x = 42``, ``(C) 12``): the
    match, or None. The text must hold math (a digit, ``=`` or a command), so ``E. coli`` and
    ``A.P.`` are text answers, not choices."""
    m = _RE_CHOICE_TEXT.fullmatch(r)
    return m if m is not None and re.search(r"[\d=\\]", m[2] or m[4]) else None
_RE_TEXT = re.compile(r"[A-Za-z][A-Za-z' .\-]*")
_VAR = r"(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?[A-Za-z0-9]+\}?)?(?:\([A-Za-z]\))?"
_RE_VAR = re.compile(_VAR)
_RE_IN_PREFIX = re.compile(_VAR + r"\\in(?![A-Za-z])")


def _repeating(sign: str, whole: str, head: str, rep: str) -> Fraction:
    v = Fraction(int(whole or 0)) + Fraction(int(head or 0), 10 ** len(head))
    v += Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(head))
    return -v if sign == "-" else v


def _as_fraction(s: str) -> Fraction | None:
    """The exact value of a plain number (int, decimal, fraction, mixed, repeating), or None."""
    if len(s) > 100:
        return None
    try:
        if _RE_NUM.fullmatch(s):
            return Fraction(s)
        if m := _RE_SLASH.fullmatch(s):
            return Fraction(m[1]) / Fraction(m[2])
        if m := _RE_FRAC.fullmatch(s):
            v = Fraction(m[2]) / Fraction(m[3])
            return -v if m[1] == "-" else v
        if m := _RE_MIXED.fullmatch(s):  # 1\frac{4}{5} is 9/5, as written in MATH answers
            v = int(m[2]) + Fraction(int(m[3]), int(m[4]))
            return -v if m[1] == "-" else v
        if m := _RE_REPEAT.fullmatch(s):
            return _repeating(*m.groups())
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _is_text(s: str) -> bool:
    return bool(_RE_TEXT.fullmatch(s)) and re.search(r"[A-Za-z]{2}", s) is not None


def _text_key(s: str) -> str:
    return re.sub(r"[\s.'\-]", "", s.lower())


_NAME_PARTS = re.compile(r"\\(?:frac|angle|measuredangle|overline|triangle|widehat|overarc|vec|bar|hat)"
                         r"(?![A-Za-z])|_\{[A-Za-z0-9]+\}|_[A-Za-z0-9]|[{}|:(),']")


def _is_name(s: str) -> bool:
    r"""A named quantity that is not a single variable: a tuple of variables ``(p,q)``, or a
    geometric name in capitals (``|AB|``, ``AB``, ``A:B``, ``V_1:V_2``, ``\frac{NO}{BO}``,
    ``\angle ABC``: points, subscripts and those marks only). Lower-case products and
    functions are equations, not names: ``xy=6`` is a hyperbola and ``|z|=1`` a circle, so
    neither equals ``6`` or ``1``; nor do ``x+y``, ``2x`` or ``\sin x`` name anything."""
    b = _brackets(s)
    if b is not None and b[0] == "(" and len(items := _split_top(b[1], ",")) > 1:
        return all(_RE_VAR.fullmatch(it) for it in items)
    return re.fullmatch(r"[A-Z]+", _NAME_PARTS.sub("", s)) is not None


def _assignment_rhs(s: str) -> str | None:
    """``x=5`` -> ``5`` (also ``f(x)=..``, ``x=2+3=5`` -> ``5``); None if not an assignment.

    A named quantity (``_is_name``) is an assignment too when its value has no variables:
    ``(p,q)=(3,2)``, ``|AB|=1``, ``S_{MBCN}:S=7:32`` (so ``xy=6`` gives ``6``, ``x+y=1`` is
    an equation)."""
    parts = _split_top(s, "=")
    if len(parts) >= 2 and _RE_VAR.fullmatch(parts[0]) and parts[-1]:
        return parts[-1]
    if (len(parts) == 2 and parts[1] and _is_name(parts[0])
            and re.search(r"[A-Za-z]", _CMD.sub("", parts[1])) is None):
        return parts[1]
    return None


def _named_values(s: str) -> tuple[list[str], list[list[str]]] | None:
    """``p=5,q=2,p=7,q=2`` -> ``(["p","q"], [["5","2"],["7","2"]])``: a list of assignments whose
    names repeat in one order is a list of solutions, one tuple each (``AB=4,CD=5`` is one
    solution, ``(4,5)``; ``x=1,x=2`` is two, ``1`` and ``2``); ``(x,y)=(2,1)`` names each
    value of its tuple. None for anything else."""
    items = _split_top(s, ",")
    if len(items) == 1 and len(parts := _split_top(s, "=")) == 2:  # (x,y)=(2,1)
        ln, rv = _brackets(parts[0]), _brackets(parts[1])
        if ln and rv and ln[0] == rv[0] == "(" and _is_name(parts[0]):
            names, values = _split_top(ln[1], ","), _split_top(rv[1], ",")
            return (names, [values]) if len(names) == len(values) else None
    if len(items) < 2:
        return None
    pairs = [(it.split("=", 1)[0], _assignment_rhs(it)) for it in items]
    if any(v is None or len(_split_top(it, "=")) != 2 for it, (_, v) in zip(items, pairs)):
        return None
    names = [n for n, _ in pairs]
    k = next(k for k in range(1, len(names) + 1)
             if len(names) % k == 0 and names == names[:k] * (len(names) // k))
    if len(set(names[:k])) != k:
        return None
    values = [v for _, v in pairs]
    return names[:k], [values[i:i + k] for i in range(0, len(values), k)]


def _values_str(groups: list[list[str]]) -> str:
    return ",".join(g[0] if len(g) == 1 else "(" + ",".join(g) + ")" for g in groups)


def _unname(g: str, r: str) -> tuple[str, str]:
    """Assignments become their values (``_named_values``), the names matched when both sides
    are named (``y=2,x=1`` = ``x=1,y=2`` = ``(x,y)=(1,2)``); a whole list under one name loses
    it (``(x,y)=(5,8),(8,5)``, ``x=1,2``). A named reference is a tuple (``AB=4,CD=5`` is
    ``(4,5)``, in that order); one named solution given against an unnamed reference is a
    bare list, so the reference's kind decides the order (``x_1=3,x_2=2`` = roots ``2,3``)."""
    ng, nr = _named_values(g), _named_values(r)
    if ng is not None and nr is not None:
        if ng[0] != nr[0]:
            if sorted(ng[0]) != sorted(nr[0]):
                return g, r
            order = [ng[0].index(n) for n in nr[0]]
            ng = nr[0], [[grp[i] for i in order] for grp in ng[1]]
        return _values_str(ng[1]), _values_str(nr[1])
    if ng is not None:
        g = ",".join(ng[1][0]) if len(ng[1]) == 1 else _values_str(ng[1])
    r = _values_str(nr[1]) if nr is not None else r
    if "=" not in r and len(_split_top(g, "=")) == 2 and (v := _assignment_rhs(g)) and len(_split_top(v, ",")) > 1:
        g = v
    if "=" not in g and len(_split_top(r, "=")) == 2 and (v := _assignment_rhs(r)) and len(_split_top(v, ",")) > 1:
        r = v
    return g, r


def _fast_one(g: str, r: str) -> bool | None:
    """Canonical given vs canonical reference: True/False when cheaply decidable, else None."""
    if g == r:
        return True
    if not g or not r or len(g) > MAX_ANSWER_CHARS or len(r) > MAX_ANSWER_CHARS:
        return False  # an over-long answer is compared as a raw string only
    if len(_split_top(g, ",")) == 1 and len(_split_top(r, ",")) == 1:
        if "=" not in r and (rhs := _assignment_rhs(g)) is not None:
            g = rhs
        elif "=" not in g and (rhs := _assignment_rhs(r)) is not None:
            r = rhs
        if g == r:
            return True
    fg, fr = _as_fraction(g), _as_fraction(r)
    if fg is not None and fr is not None:
        return fg == fr
    if m := _RE_CHOICE_REF.fullmatch(r):
        return _choice(g) == m[1]
    if (m := _choice_text(r)) and (c := _choice(g)):
        return c == (m[1] or m[3])
    if _is_text(r) or _is_text(g):
        return _text_key(g) == _text_key(r)
    return None


# ---------------------------------------------------------------------------------------------
# Structure: tuples, intervals, sets, lists, unions, matrices, equations
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|.", re.S)
_OPENERS, _CLOSERS = {"(", "[", "{", "\\{"}, {")", "]", "}", "\\}"}


def _split_top(s: str, sep: str) -> list[str]:
    r"""Split on ``sep`` (``,`` ``=`` ``\cup`` ``\\`` ``&``) outside all brackets."""
    parts, depth, start, prev = [], 0, 0, ""
    for m in _TOKEN.finditer(s):
        t = m.group()
        if t in _OPENERS:
            depth += 1
        elif t in _CLOSERS:
            depth -= 1
        elif depth == 0 and t == sep and not (sep == "=" and prev in ("<", ">", "!", ":")):
            parts.append(s[start:m.start()])
            start = m.end()
        prev = t
    parts.append(s[start:])
    return parts


def _brackets(s: str) -> tuple[str, str, str] | None:
    """(open, inner, close) if the whole string is one bracketed group."""
    depth = 0
    for m in _TOKEN.finditer(s):
        t = m.group()
        if t in _OPENERS:
            depth += 1
        elif t in _CLOSERS:
            depth -= 1
        if depth <= 0:
            if m.end() == len(s) and m.start() > 0 and s[0] in "([\\" and t in _CLOSERS:
                op = "\\{" if s.startswith("\\{") else s[0]
                return op, s[len(op):m.start()], t
            return None
    return None


def _expand_pm(items: list[str]) -> list[str]:
    out = []
    for it in items:
        if "\\pm" in it or "\\mp" in it:
            a = it.replace("\\pm", "+", 1).replace("\\mp", "-", 1)
            b = it.replace("\\pm", "-", 1).replace("\\mp", "+", 1)
            out += [a.replace("(+", "(").lstrip("+"), b]
        else:
            out.append(it)
    return out


def _collection(s: str):
    """(kind, brackets, items): kind 'seq' (ordered), 'set' or 'list' (unordered); or None."""
    b = _brackets(s)
    if b is not None and b[0] == "\\{":
        return "set", "{}", _expand_pm(_split_top(b[1], ","))
    if b is not None and b[0] in "([" and len(items := _split_top(b[1], ",")) >= 2:
        return "seq", b[0] + b[2], items
    items = _expand_pm(_split_top(s, ",")) if b is None else [s]
    return ("list", "", items) if len(items) >= 2 else None


def _ordered(gs: list[str], rs: list[str], depth: int) -> bool:
    return len(gs) == len(rs) and all(_equiv(g, r, depth + 1) for g, r in zip(gs, rs))


def _distinct(items: list[str], depth: int) -> list[str]:
    out: list[str] = []
    for it in items:
        if not any(_equiv(it, o, depth + 1) for o in out):
            out.append(it)
    return out


def _unordered(gs: list[str], rs: list[str], depth: int) -> bool:
    """A perfect matching under equivalence (greedy is exact: equivalence is transitive).
    A solution listed twice counts once, unless the reference itself repeats one (then it
    is a multiset: roots with multiplicity), and only up to twice the reference's length."""
    if len(rs) < len(gs) <= 2 * len(rs) and len(_distinct(rs, depth)) == len(rs):
        gs = _distinct(gs, depth)  # bounded: a given list over twice as long is wrong at once
    if len(gs) != len(rs):
        return False
    free = list(gs)
    for r in rs:
        hit = next((i for i, g in enumerate(free) if _equiv(g, r, depth + 1)), None)
        if hit is None:
            return False
        free.pop(hit)
    return True


def _collections_equiv(g: str, r: str, depth: int) -> bool | None:
    cg, cr = _collection(g), _collection(r)
    if cg is None and cr is None:
        return None
    if cr is None:  # a one-element set given for a scalar
        return cg[0] == "set" and len(cg[2]) == 1 and _equiv(cg[2][0], r, depth + 1)
    if cg is None:
        cg = ("list", "", [g])
    (kg, bg, ig), (kr, br, ir) = cg, cr
    if kr == "seq":  # ordered: same brackets, or a bare list for a ( ) tuple
        ok = (kg == "seq" and bg == br) or (kg == "list" and br == "()")
        return ok and _ordered(ig, ir, depth)
    if kr == "set" and kg == "seq":
        return False
    if kr == "list" and kg == "seq":  # "(-2,1)" is an ordered pair or an interval: never "1,-2"
        return bg == "()" and _ordered(ig, ir, depth)
    return _unordered(ig, ir, depth)


_MATRIX = re.compile(r"\\begin\{([pbB]?matrix|smallmatrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}", re.S)


def _matrix(s: str) -> list[list[str]] | None:
    b = _brackets(s)
    if b is not None and b[0] in "([":  # (\begin{array}..\end{array})
        s = b[1]
    m = _MATRIX.fullmatch(s)
    if m is None:
        return None
    body = m.group(2).replace("\\hline", "")
    rows = [row for row in _split_top(body, "\\\\") if row]
    return [_split_top(row, "&") for row in rows]


_REL_SPLIT = re.compile(r"(<|>|\\le(?![A-Za-z])|\\ge(?![A-Za-z]))")
_FLIP = {"<": ">", ">": "<", "\\le": "\\ge", "\\ge": "\\le"}


def _negate(a: str) -> str:
    """``-a`` as a string: ``2`` -> ``-2``, ``-\\frac{3}{2}`` -> ``\\frac{3}{2}``, ``1+\\sqrt2`` -> ``-(1+\\sqrt2)``."""
    t = a[1:] if a.startswith("-") else a
    if len(_split_top(t, "+")) > 1 or len(_split_top(t, "-")) > 1:
        return "-(" + a + ")"
    return t if a.startswith("-") else "-" + a


_ABS_VAR = re.compile(r"\|(" + _VAR + r")\|")


def _inequality_interval(s: str) -> str | None:
    r"""``x>3`` -> ``(3,\infty)``, ``-1\le x<2`` -> ``[-1,2)``, ``-x>-1`` -> ``(-\infty,1)``,
    ``1\le|z|\le2`` -> ``[-2,-1]\cup[1,2]``; None if not of that form (one variable, or its
    negative or absolute value, between constant bounds)."""
    p = [x.strip() for x in _REL_SPLIT.split(s)]
    if len(p) not in (3, 5) or not all(p[::2]):
        return None
    def plain(t: str) -> bool:
        return bool(_RE_VAR.fullmatch(t)) and t not in ("\\pi", "\\infty")

    def is_var(t: str) -> bool:  # x, -x or |x|
        return plain(t) or plain(t[1:] if t.startswith("-") else t.strip("|") if _ABS_VAR.fullmatch(t) else "")

    if len(p) == 3 and is_var(p[2]) and (not is_var(p[0]) or (plain(p[2]) and not plain(p[0]))):
        p = [p[2], _FLIP[p[1]], p[0]]  # "3<x", "-a<x": the variable goes left
    if len(p) == 5 and p[1] in (">", "\\ge") and p[3] in (">", "\\ge"):
        p = [p[4], _FLIP[p[3]], p[2], _FLIP[p[1]], p[0]]
    lo = hi = None  # (bound, closed)
    if len(p) == 3 and is_var(p[0]):
        v = p[0]
        if p[1] in ("<", "\\le"):
            hi = (p[2], p[1] == "\\le")
        else:
            lo = (p[2], p[1] == "\\ge")
    elif len(p) == 5 and is_var(p[2]) and p[1] in ("<", "\\le") and p[3] in ("<", "\\le"):
        v, lo, hi = p[2], (p[0], p[1] == "\\le"), (p[4], p[3] == "\\le")
    else:
        return None
    if v.startswith("-"):  # -x > -1 is x < 1
        lo, hi = ((_negate(hi[0]), hi[1]) if hi else None), ((_negate(lo[0]), lo[1]) if lo else None)
    if not v.startswith("|"):
        return _interval(lo, hi)
    if any(b is not None and (f := _as_fraction(b[0])) is not None and f < 0 for b in (lo, hi)):
        return None  # |x| < -1 is empty, |x| > -1 everything: not read as intervals
    if lo is None:  # |x| < b
        return _interval((_negate(hi[0]), hi[1]), hi)
    neg_lo = (_negate(lo[0]), lo[1])
    if hi is None:  # |x| > a
        return _interval(None, neg_lo) + "\\cup" + _interval(lo, None)
    return _interval((_negate(hi[0]), hi[1]), neg_lo) + "\\cup" + _interval(lo, hi)


def _interval(lo, hi) -> str:
    left = ("[" if lo[1] else "(") + lo[0] if lo else "(-\\infty"
    right = hi[0] + ("]" if hi[1] else ")") if hi else "\\infty)"
    return left + "," + right


def _set_notation(s: str) -> str:
    r"""Inequalities (and unions/lists of them) become intervals; ``x\in`` is dropped."""
    if m := _RE_IN_PREFIX.match(s):
        s = s[m.end():]
    if "<" not in s and ">" not in s and "\\le" not in s and "\\ge" not in s:
        return s
    parts = [q for p in _split_top(s, "\\cup") for q in _split_top(p, ",")]
    intervals = [_inequality_interval(p) for p in parts]
    return "\\cup".join(intervals) if all(intervals) else s


def _equations_equiv(g: str, r: str, depth: int) -> bool | None:
    gp, rp = _split_top(g, "="), _split_top(r, "=")
    if len(gp) == 1 and len(rp) == 1:
        return None
    ga, ra = _assignment_rhs(g), _assignment_rhs(r)
    if len(rp) == 1:
        return ga is not None and _equiv(ga, r, depth + 1)
    if len(gp) == 1:
        return ra is not None and _equiv(g, ra, depth + 1)
    if ga is not None and ra is not None and gp[0] == rp[0]:
        return _equiv(ga, ra, depth + 1)
    return len(gp) == 2 and len(rp) == 2 and _sympy_equation(gp, rp)


def _equiv(g: str, r: str, depth: int = 0) -> bool:
    """Canonical given vs canonical reference, all rules (may call sympy)."""
    fast = _fast_one(g, r)
    if fast is not None:
        return fast
    if depth > 8:
        return False
    if m := _choice_text(r):  # "C. x = 42": the letter (decided above) or the text
        return _equiv(g, m[2] or m[4], depth + 1)
    g, r = _unname(*map(_set_notation, (g, r)))
    if g == r:
        return True
    gu, ru = _split_top(g, "\\cup"), _split_top(r, "\\cup")
    if len(gu) > 1 or len(ru) > 1:
        return _unordered(gu, ru, depth)
    mg, mr = _matrix(g), _matrix(r)
    if mg is not None or mr is not None:  # a matrix only ever equals a matrix
        return (mg is not None and mr is not None and len(mg) == len(mr)
                and all(_ordered(a, b, depth) for a, b in zip(mg, mr)))
    coll = _collections_equiv(g, r, depth)
    if coll is not None:
        return coll
    eq = _equations_equiv(g, r, depth)
    if eq is not None:
        return eq
    return not _far_apart(g, r) and _sympy_equiv(g, r)


# ---------------------------------------------------------------------------------------------
# Sympy (imported lazily: the in-process fast path never needs it)
# ---------------------------------------------------------------------------------------------

_EXP_BAD = re.compile(r"\d{6,}|[!^]")
_CALCULUS = re.compile(r"\\(?:sum|prod|int|iint|oint|lim)(?![A-Za-z])")
_BIG_COUNT = re.compile(r"!|\\binom|\\choose")


def _unsafe(s: str) -> bool:
    """True for strings sympy may hang or explode on (the static guard; see module docstring).

    Measured: sympy needs 1-2 s to prove (x^2-1)^{100} = (x-1)^{100}(x+1)^{100}, 20 s at 300 and
    does not finish at 1000; evalf of \\sum_{k=1}^{9999} k^k does not finish either. Inputs
    that pass it can still be slow: \\sin(9^{99999}) against \\sin(9^{99999}+2\\pi) takes 2-3 s (pi to
    95,000 digits, at each precision evalf tries).
    """
    if len(s) > MAX_SYMPY_CHARS or _CALCULUS.search(s):  # unevaluated: not a final answer
        return True
    i = s.find("^")
    while i >= 0:
        if i + 1 < len(s) and s[i + 1] == "{":
            e = _close_brace(s, i + 1)
            if e < 0:
                return True
            exp = s[i + 2:e]
        else:
            exp = s[i + 1:i + 2]
        cap = 100_000 if i > 0 and s[i - 1].isdigit() else 100  # big ints are cheap, expand is not
        if _EXP_BAD.search(exp) or any(int(x) > cap for x in re.findall(r"\d+", exp)):
            return True  # 9^{9^{9^9}}, 2^{10^{100}}, (x+1)^{1000}
        i = s.find("^", i + 1)
    return _BIG_COUNT.search(s) is not None and re.search(r"\d{5,}", s) is not None


_REPEAT = re.compile(r"(\d*)\.(\d*)\\overline\{(\d+)\}")
_DECIMAL = re.compile(r"(?<![\d.])(\d*)\.(\d+)(?![\d.])")


def _exact_decimals(s: str) -> str:
    r"""``0.15`` -> ``(\frac{3}{20})``, ``0.\overline{3}`` -> ``(\frac{1}{3})``: no Floats."""
    def frac(v: Fraction) -> str:
        return "(\\frac{%d}{%d})" % (v.numerator, v.denominator)
    s = _REPEAT.sub(lambda m: frac(_repeating("", *m.groups())), s)
    return _DECIMAL.sub(lambda m: frac(Fraction(m[1] + "." + m[2])), s)


_DIGITS = 30  # precision asked of each evaluation
_CONFIRM_DIGITS = 150  # a value that reads zero is evaluated again at this precision
_SIMPLIFY_MAX_OPS = 40  # the symbolic fallback's budget (sympy.count_ops of a - b)


@lru_cache(maxsize=4096)
def _parse(s: str):
    """LaTeX -> sympy (real symbols, ``i`` the imaginary unit), or None if it does not parse."""
    import sympy
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig, latex2sympy

    try:
        e = latex2sympy(_exact_decimals(s), is_real=True, normalization_config=None,
                        conversion_config=ConversionConfig(lowercase_symbols=False))
        if isinstance(e, sympy.Basic):
            i = sympy.Symbol("i", real=True)
            if i in e.free_symbols:
                e = e.subs(i, sympy.I)
        return e
    except Exception:
        return None


def _zero_at(e, at: dict) -> bool | None:
    """Whether ``e`` vanishes at the point ``at``: False if sympy's adaptive evaluation
    certifies a nonzero value (``10^{-80}`` is not 0), True if the value cannot be told from
    zero at ``_DIGITS`` digits and again at ``_CONFIRM_DIGITS`` (``evalf(strict=True)``
    raises PrecisionExhausted, or gives 0: ``\\ln(1+10^{-35})`` reads 0 at 30 digits, not at
    150), None if ``e`` has no numeric value there (an unknown function, a pole). A
    difference below about 10^-150 of the terms' size therefore counts as zero."""
    from sympy.core.evalf import PrecisionExhausted

    for digits in (_DIGITS, _CONFIRM_DIGITS):
        try:
            v = e.evalf(digits, subs=at, strict=True)
        except PrecisionExhausted:
            continue
        except Exception:
            return None
        if not v.is_number or v.has(*_NON_FINITE()):
            return None
        if v != 0:
            return False
    return True


def _NON_FINITE():
    import sympy

    return sympy.zoo, sympy.nan, sympy.oo, -sympy.oo


_SIGNS = [lambda i: 1, lambda i: -1, lambda i: (-1) ** i, lambda i: -(-1) ** i]


@lru_cache(maxsize=None)
def _point_value(i: int, k: int) -> tuple[int, int]:
    """A fixed non-integer rational in (0.01, 100) for variable ``i`` at point ``k``, drawn once
    from a seeded generator, so no two variables share values (``x_1`` vs ``x_7``)."""
    import random

    rng = random.Random(f"urz-point-{i}-{k}")
    while True:
        p, q = rng.randint(11, 997), rng.randint(11, 997)
        if p % q:
            return p, q


def _sample_points(symbols: list) -> list[dict]:
    """Four points for variables: all positive, all negative, then alternating signs both
    ways (``\\sqrt{x^2}`` is ``|x|``, not ``x``; ``\\sqrt{x}\\sqrt{y}`` is not ``\\sqrt{xy}``);
    one (empty) point for constants."""
    import sympy

    return [{x: sign(i) * sympy.Rational(*_point_value(i, k)) for i, x in enumerate(symbols)}
            for k, sign in enumerate(_SIGNS if symbols else [])] or [{}]


def _piecewise(*exprs) -> bool:
    """Functions that numbers at a few points cannot pin down (floor+1 and ceil agree at every
    non-integer; |x-5| and 5-x wherever x < 5): for these a match at the points needs a proof."""
    import sympy

    kinds = (sympy.floor, sympy.ceiling, sympy.frac, sympy.Abs, sympy.sign, sympy.Mod, sympy.Min,
             sympy.Max, sympy.Piecewise, sympy.Heaviside)
    return any(e.has(*kinds) for e in exprs)


def _zero_everywhere(d) -> bool | None:
    """``_zero_at`` over the sample points: False at the first certified nonzero value, True
    if zero at all, None if some point has no value (and none is nonzero)."""
    verdict = True
    for at in _sample_points(sorted(d.free_symbols, key=str)):
        z = _zero_at(d, at)
        if z is False:
            return False
        verdict = verdict and z
    return verdict


def _same_value(a, b) -> bool:
    """Exact equality of two sympy expressions, bounded in cost.

    Decided numerically where the difference can be evaluated: it must be indistinguishable
    from zero at four points with mixed signs, each variable its own value (one point for a
    constant), and a certified nonzero value there makes the two unequal (``_zero_at``). For
    polynomials and rational functions a nonzero difference vanishing at those points would
    be a contrived coincidence; for constants (nested radicals) zero is confirmed at 150
    digits. Rounded decimals are made exact before this, so ``1.414`` still differs from
    ``\\sqrt2``. Where some point has no value, or a piecewise function is involved
    (``_piecewise``), agreement is not enough: sympy must prove it (``simplify`` of the
    difference), and only when that difference is small (``_SIMPLIFY_MAX_OPS``); a bigger one
    is unequal. simplify took 7-11 s on two spellings of one nested radical; this takes ms.
    """
    import sympy

    if a == b:
        return True
    d = a - b
    numeric = _zero_everywhere(d)
    if numeric is False or (numeric is True and not _piecewise(a, b)):
        return numeric
    try:
        if sympy.count_ops(d) > _SIMPLIFY_MAX_OPS:
            return False
        return sympy.simplify(d) == 0
    except Exception:
        return False


def _rebuild(e):
    """``e`` with every node re-evaluated (canonical argument order), nothing computed:
    latex2sympy builds products unevaluated, so ``F_kF_j`` and ``F_jF_k`` differ structurally."""
    return e.func(*map(_rebuild, e.args)) if e.args else e


def _same_unevaluated(g: str, r: str) -> bool:
    r"""Sums, products, integrals and limits are not evaluated (``\sum_{k=1}^{9999}k^k``
    would not finish): equal only if the same expression up to argument order."""
    if any(_unsafe(_CALCULUS.sub("", x)) for x in (g, r)):
        return False
    eg, er = _parse(g), _parse(r)
    try:
        return eg is not None and er is not None and _rebuild(eg) == _rebuild(er)
    except Exception:
        return False


_QUICK_TOKEN = re.compile(r"\d+\.?\d*|\.\d+|\\(?:frac|sqrt|pi|cdot|times)(?![A-Za-z])|[-+*/^(){}]|[A-DF-HJ-Za-df-z]")


def _principal(v: complex) -> complex:
    """``-4`` negated from ``4`` carries ``-0j``, which puts ``\\sqrt{-4}`` on the wrong side of
    the branch cut (``-2i``); sympy's principal root is ``2i``."""
    return complex(v.real + 0.0, v.imag + 0.0)


_EPS = 1e-15  # relative rounding of one float operation (with margin: doubles give 1.1e-16)


class _QuickValue:
    r"""A float reading of plain LaTeX (numbers, ``+ - \cdot \times /``, ``\frac``, ``\sqrt``,
    ``\pi``, ``i``, ``^``, brackets, implicit products such as ``3\sqrt{13}`` or ``2k``, and
    single-letter variables at one fixed value each), used only to reject: two expressions
    equal as functions are equal at every point, so values further apart than their error
    bounds prove them unequal without parsing either side for sympy. Every value carries an
    absolute error bound, propagated through each operation (cancellation in a denominator,
    ``\frac{1}{\sqrt{10^{14}+1}-10^7}``, widens it rather than faking a difference). Anything
    else reads as None: ``e``, ``E``, ``I``, a function ``f(x)``, a command such as ``\cot``,
    ``2\frac12``, a big exponent, and a term mixing ``/`` with an implicit product (``1/2x``:
    latex2sympy reads 1/(2x))."""

    def __init__(self, s: str):
        self.toks, self.i = [], 0
        pos = 0
        for m in _QUICK_TOKEN.finditer(s):
            if m.start() != pos:
                raise ValueError(s)
            self.toks.append(m.group())
            pos = m.end()
        if pos != len(s) or len(self.toks) > 200:
            raise ValueError(s)

    def peek(self) -> str:
        return self.toks[self.i] if self.i < len(self.toks) else ""

    def take(self, want: str | None = None) -> str:
        t = self.peek()
        if not t or (want is not None and t != want):
            raise ValueError(want)
        self.i += 1
        return t

    @staticmethod
    def num(v: complex, err: float) -> tuple[complex, float]:
        if v != v or abs(v) > 1e100 or err != err:
            raise ValueError(v)
        return v, err + _EPS * abs(v)

    def expr(self):
        v, e = self.term()
        while self.peek() in ("+", "-"):
            sign = 1 if self.take() == "+" else -1
            w, f = self.term()
            v, e = self.num(v + sign * w, e + f)
        return v, e

    def term(self):
        (v, e), slash, implicit = self.unary(), False, False
        while True:
            t = self.peek()
            if t in ("\\cdot", "\\times", "*", "/"):
                self.take()
                (w, f), slash = self.unary(), slash or t == "/"
            elif t in ("\\sqrt", "\\pi", "(", "\\frac") or t.isalpha():  # implicit product: 3\sqrt{13}, 2k
                if t == "\\frac" and self.toks[self.i - 1][0].isdigit():
                    raise ValueError("2\\frac12 is a mixed number or a product")
                (w, f), implicit = self.power(), True
            else:
                return v, e
            if slash and implicit:
                raise ValueError("1/2x: latex2sympy reads 1/(2x)")
            v, e = self.div(v, e, w, f) if t == "/" else self.num(v * w, abs(v) * f + abs(w) * e + e * f)

    def div(self, v, e, w, f):
        if abs(w) <= 2 * f:
            raise ValueError("the divisor is not told from 0")
        q = v / w
        return self.num(q, (e + abs(q) * f) / (abs(w) - f))

    def unary(self):
        if self.peek() in ("+", "-"):
            neg = self.take() == "-"
            v, e = self.unary()
            return (-v, e) if neg else (v, e)
        return self.power()

    def power(self):
        v, e = self.atom()
        if self.peek() == "^":
            self.take()
            x, xe = self.atom() if self.peek() != "{" else self.braced()
            if x.imag or abs(x.real) > 100:
                raise ValueError(x)
            v, e = self.pow(v, e, x.real, xe)
        return v, e

    def pow(self, v, e, x: float, xe: float = 0.0):
        if abs(v) <= 2 * e:
            raise ValueError("the base is not told from 0")
        w = _principal(v) ** x
        # |w|((1 + rel)^|x| - 1) for the base's error, |w| |log v| xe for the exponent's
        return self.num(w, abs(w) * (((1 + e / (abs(v) - e)) ** abs(x)) - 1)
                        + abs(w) * abs(cmath.log(_principal(v))) * xe)

    def braced(self):
        self.take("{")
        v = self.expr()
        self.take("}")
        return v

    def atom(self):
        t = self.take()
        if t[0].isdigit() or t[0] == ".":
            return self.num(complex(float(t)), 0.0)
        if t == "\\pi":
            return self.num(complex(math.pi), 0.0)
        if t == "i":
            return 1j, 0.0
        if t.isalpha():
            if self.peek() == "(":
                raise ValueError("f(x) may be a function")
            return complex(0.6180339887 + 0.1732050808 * ((ord(t) * 13) % 29)), 0.0
        if t == "\\sqrt":
            return self.pow(*self.braced(), 0.5)
        if t == "\\frac":
            a, b = self.braced(), self.braced()
            return self.div(*a, *b)
        if t in ("(", "{"):
            v = self.expr()
            self.take(")" if t == "(" else "}")
            return v
        raise ValueError(t)

    @classmethod
    def of(cls, s: str) -> tuple[complex, float] | None:
        """(value, error bound), or None if ``s`` is not of the plain form."""
        try:
            q = cls(s)
            v = q.expr()
            return v if q.i == len(q.toks) else None
        except (ValueError, ZeroDivisionError, OverflowError):
            return None


def _far_apart(g: str, r: str) -> bool:
    qg, qr = _QuickValue.of(g), _QuickValue.of(r)
    return qg is not None and qr is not None and abs(qg[0] - qr[0]) > 2 * (qg[1] + qr[1]) + 1e-300


def _sympy_equiv(g: str, r: str) -> bool:
    if len(g) <= MAX_SYMPY_CHARS and len(r) <= MAX_SYMPY_CHARS and (_CALCULUS.search(g) or _CALCULUS.search(r)):
        return _same_unevaluated(g, r)
    if _unsafe(g) or _unsafe(r):
        return False
    import sympy

    eg, er = _parse(g), _parse(r)
    if eg is None or er is None:
        return False
    if isinstance(eg, sympy.Expr) and isinstance(er, sympy.Expr):
        if eg.has(sympy.zoo, sympy.nan) or er.has(sympy.zoo, sympy.nan):
            return False  # 1/0 is undefined, not equal to 2/0
        return _same_value(eg, er)
    try:  # sets, relations, ...: structural equality only
        return bool(eg == er)
    except Exception:
        return False


def _sympy_equation(gp: list[str], rp: list[str]) -> bool:
    """``lhs = rhs`` equations equal up to a nonzero constant factor (lines, planes): the
    ratio of the two differences is a nonzero number at the first sample point and takes
    that value at the others (``_zero_at``); where it has no value, it must cancel to a
    nonzero constant within the simplify budget."""
    if any(_unsafe(x) for x in gp + rp):
        return False
    import sympy

    sides = [_parse(x) for x in gp + rp]
    if not all(isinstance(x, sympy.Expr) for x in sides):
        return False
    dg, dr = sides[0] - sides[1], sides[2] - sides[3]
    if not dg.free_symbols or not dr.free_symbols or dr == 0:
        return False
    ratio = dg / dr
    first, *rest = _sample_points(sorted(ratio.free_symbols, key=str))
    try:
        c = ratio.subs(first)
    except Exception:
        c = None
    if c is not None and _zero_at(c, {}) is False:
        zeros = [_zero_at(ratio - c, at) for at in rest]
        if False in zeros:
            return False
        if None not in zeros and not _piecewise(ratio):
            return True
    try:
        if sympy.count_ops(ratio) > _SIMPLIFY_MAX_OPS:
            return False
        q = sympy.cancel(ratio)
        if q.free_symbols:
            q = sympy.simplify(q)
        return not q.free_symbols and q != 0 and bool(q.is_finite)
    except Exception:
        return False


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def _ref_str(x) -> str | None:
    if x is None or isinstance(x, bool):
        return None
    if isinstance(x, float):
        if x != x or abs(x) == float("inf"):
            return None
        return format(Decimal(repr(x)), "f")  # 1e-05 -> 0.00001
    if isinstance(x, Fraction):
        return f"{x.numerator}/{x.denominator}"
    s = str(x).strip()
    return s or None


def _refs(reference) -> list[str]:
    """A reference may be a string, a number, or a list of acceptable answers."""
    items = reference if isinstance(reference, (list, tuple)) else [reference]
    return [s for s in map(_ref_str, items) if s is not None]


def _verdict_fast(answer: str, refs: list[str]) -> bool | None:
    """The in-process pass: True/False if string and number rules decide, None if sympy must."""
    try:
        g = _canon(answer)
        votes = [_fast_one(g, _canon(r)) for r in refs]
    except Exception:
        return None  # let the full (guarded) path decide, and score 0 if it fails too
    return True if True in votes else (None if None in votes else False)


def _verdict(answer: str, refs: list[str]) -> bool:
    """All rules, in this process. Never raises: a grader error scores the item 0."""
    try:
        g = _canon(answer)
        return any(_equiv(g, _canon(r)) for r in refs)
    except Exception:
        return False


def is_equiv(given: str, reference) -> bool:
    """Whether ``given`` equals ``reference`` (or any of a list of references) by the policy.

    Not symmetric where the policy says the reference decides (choice letters, whether order
    matters). Runs in this process, guarded only by the static guard.
    """
    given = _ref_str(given)
    return given is not None and _verdict(given, _refs(reference))


def _new_info(response, rule: str) -> dict:
    answer = None
    if isinstance(response, str):
        answer = _answer_tag(response) if rule == ANSWER_TAG else _last_boxed(response)
    return {"formatted": answer is not None, "answer": answer, "correct": False, "timeout": False}


def _score(info: dict, format_reward: float) -> float:
    return 1.0 if info["correct"] else (format_reward if info["formatted"] else 0.0)


def reward_fn(response: str, reference, template: str = "qwen_math",
              format_reward: float = 0.0) -> tuple[float, dict]:
    """``(reward, info)`` for one response, graded in this process.

    reward is 1.0 if the extracted answer equals the reference (str, number, or list of
    acceptable answers), else ``format_reward`` if an answer was extracted, else 0.0. The
    default ``format_reward=0.0`` gives the pure 0/1 correctness reward of the Dr. GRPO paper;
    a positive value rewards a formatted-but-wrong answer (never above 1, so the scale of
    the reward, and of the advantages, is unchanged). info: ``formatted``, ``answer``
    (extracted, or None), ``correct``, ``timeout`` (always False here: only the static guard
    protects this call; use ``grade_batch`` where an item must be killable).
    """
    info = _new_info(response, get_template(template).extraction)
    if info["formatted"]:
        refs = _refs(reference)
        fast = _verdict_fast(info["answer"], refs)
        info["correct"] = fast if fast is not None else _verdict(info["answer"], refs)
    return _score(info, format_reward), info


def grade_batch(responses, references, template: str = "qwen_math",
                timeout_s: float = DEFAULT_TIMEOUT_S, num_workers: int | None = None,
                format_reward: float = 0.0) -> list[tuple[float, dict]]:
    """``reward_fn`` over a batch, with a killable per-item time limit.

    Extraction and the cheap string/number checks run here; only items that need sympy go
    to the pool (``num_workers`` processes, default ``min(4, cpu_count)``, started on the
    first call and kept until exit). An item still running after ``timeout_s`` seconds has
    its worker killed and replaced, and scores 0 with ``info["timeout"] = True`` (also set if
    a worker dies mid-item). Works from any thread and inside every torchrun rank: the workers
    are fresh interpreters (no fork of the caller's threads), and no signals are used.
    ``num_workers=0`` grades in this process with only the static guard (no timeout).
    """
    if len(responses) != len(references):
        raise ValueError(f"{len(responses)} responses but {len(references)} references")
    rule = get_template(template).extraction
    infos, jobs = [], []
    for i, (response, reference) in enumerate(zip(responses, references)):
        info = _new_info(response, rule)
        if info["formatted"]:
            refs = _refs(reference)
            fast = _verdict_fast(info["answer"], refs)
            if fast is None:
                jobs.append((i, info["answer"], refs))
            else:
                info["correct"] = fast
        infos.append(info)
    if jobs and num_workers == 0:
        for i, answer, refs in jobs:
            infos[i]["correct"] = _verdict(answer, refs)
    elif jobs:
        # an item whose check raised counts as ungraded, like a killed one (scored 0)
        done = run_killable(_VERDICT, [[a, refs] for _, a, refs in jobs],
                            timeout_s, num_workers)
        for (i, _, _), (ok, timed_out, error) in zip(jobs, done):
            infos[i]["correct"], infos[i]["timeout"] = bool(ok), timed_out or error is not None
    return [(_score(info, format_reward), info) for info in infos]


# ---------------------------------------------------------------------------------------------
# The worker pool: fresh interpreters speaking JSON lines over pipes, killed on timeout
# ---------------------------------------------------------------------------------------------

_START_TIMEOUT_S = 120.0  # importing sympy on a loaded 2-core box can take a while
_WORKER_MEM_BYTES = 4 << 30  # a runaway sympy computation dies with MemoryError, not the box
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_POOL_LOCK = threading.Lock()
_VERDICT = "understand_r1_zero.math_grader:_verdict"  # the math reward's pool function
_POOL: _Pool | None = None


class _Worker:
    """One grading subprocess. ``python -c`` (not multiprocessing) so it never re-imports the
    caller's ``__main__`` (a training script importing torch) and never forks the caller."""

    def __init__(self):
        # The caller's sys.path goes along (appended in the worker, after its own, so nothing
        # beside the caller's script can shadow the stdlib): a reward in the caller's modules imports.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p),
                   URZ_WORKER_PATH=os.pathsep.join(p for p in sys.path if p))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from understand_r1_zero.math_grader import _worker_main; "
                                   "_worker_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.started, self.ready, self.job, self.t0, self._buf = time.monotonic(), False, None, 0.0, b""
        self.loaded = {_VERDICT}  # functions this worker has imported (and so runs under the deadline)
        self.fn = ""  # the current job's function

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    def send(self, obj) -> None:
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")
        self.proc.stdin.flush()

    def messages(self) -> list[dict] | None:
        """Whatever complete messages have arrived; None once the worker is gone."""
        data = os.read(self.fileno(), 1 << 16)
        if not data:
            return None
        *lines, self._buf = (self._buf + data).split(b"\n")
        msgs = []
        for line in lines:
            try:
                msgs.append(json.loads(line))
            except ValueError:  # not ours (the protocol fd only carries our JSON lines)
                pass
        return msgs

    def close(self, grace_s: float = 0.0) -> None:
        try:
            self.proc.stdin.close()  # EOF: an idle worker exits by itself
            self.proc.wait(timeout=grace_s)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


class _Pool:
    def __init__(self, n: int):
        self.pid = os.getpid()
        self.workers = [_Worker() for _ in range(n)]
        self.start_failures = 0  # consecutive; a worker that cannot even start is a setup error

    def resize(self, n: int) -> None:
        while len(self.workers) > n:
            self.workers.pop().close()
        self.workers += [_Worker() for _ in range(n - len(self.workers))]

    def _replace(self, w: _Worker) -> None:
        w.close()  # stdin closed + SIGKILL: nothing in the worker can block this
        self.workers[self.workers.index(w)] = _Worker()

    def run(self, jobs: list, timeout_s: float) -> dict[int, tuple]:
        """{item index: (result, timed_out, error)} for ``jobs = [(index, "module:function", args), ...]``:
        each worker calls ``function(*args)`` (JSON in, JSON out). A killed or dead worker's item
        is (None, True, None); one whose function raised (or returned what JSON cannot carry) is
        (None, False, the error's text). The first call of a function in a worker imports its
        module first; the item's deadline starts once that import is done (``loaded``), so a slow
        import is not a timeout (the import itself has ``_START_TIMEOUT_S``)."""
        queue, out = deque(jobs), {}
        for w in self.workers:  # still busy from a run that was interrupted (KeyboardInterrupt)
            if w.job is not None:
                self._replace(w)
        while queue or any(w.job is not None for w in self.workers):
            for w in self.workers:
                if w.ready and w.job is None and queue:
                    job = queue.popleft()
                    try:
                        w.send({"id": job[0], "fn": job[1], "args": job[2]})
                    except OSError:  # died while idle: retry the item on a fresh worker
                        queue.appendleft(job)
                        self._replace(w)
                        continue
                    w.job, w.fn, w.t0 = job[0], job[1], time.monotonic()
            now = time.monotonic()
            deadlines = [w.t0 + self._limit(w, timeout_s) for w in self.workers if w.job is not None]
            deadlines += [w.started + _START_TIMEOUT_S for w in self.workers if not w.ready]
            timeout = max(0.0, min(deadlines, default=now + 1.0) - now)
            for w in _wait_readable(self.workers, timeout):
                msgs = w.messages()
                if msgs is None:
                    if not w.ready:
                        self.start_failures += 1
                        if self.start_failures > 3:
                            raise RuntimeError("math_grader workers exit while starting (see stderr)")
                    if w.job is not None:
                        out[w.job] = (None, True, None)
                    self._replace(w)
                    continue
                for msg in msgs:
                    if msg.get("ready"):
                        w.ready, self.start_failures = True, 0
                    elif msg.get("loaded") is not None and msg.get("loaded") == w.job:
                        w.loaded.add(w.fn)
                        w.t0 = time.monotonic()  # the deadline starts now
                    elif msg.get("id") == w.job:
                        out[w.job], w.job = (msg.get("result"), False, msg.get("error")), None
            now = time.monotonic()
            for w in list(self.workers):
                if w.job is not None and now - w.t0 >= self._limit(w, timeout_s):
                    out[w.job] = (None, True, None)
                    self._replace(w)
                elif not w.ready and now - w.started > _START_TIMEOUT_S:
                    raise RuntimeError(f"a math_grader worker did not start in {_START_TIMEOUT_S}s")
        return out

    @staticmethod
    def _limit(w: _Worker, timeout_s: float) -> float:
        return timeout_s if w.fn in w.loaded else _START_TIMEOUT_S  # importing the function's module

    def close(self) -> None:
        for w in self.workers:
            w.close(grace_s=1.0)
        self.workers = []


def _get_pool(n: int) -> _Pool:
    global _POOL
    if _POOL is None or _POOL.pid != os.getpid():  # a forked child must not share its parent's
        _POOL = _Pool(n)
    elif len(_POOL.workers) != n:
        _POOL.resize(n)
    return _POOL


def _shutdown_pool() -> None:
    global _POOL
    if _POOL is not None and _POOL.pid == os.getpid():
        _POOL.close()
    _POOL = None


atexit.register(_shutdown_pool)


def run_killable(fn: str, calls: list[list], timeout_s: float = DEFAULT_TIMEOUT_S,
                 num_workers: int | None = None) -> list[tuple]:
    """``fn(*args)`` for each ``args`` of ``calls`` in the worker pool, each call killed after
    ``timeout_s`` seconds: ``[(result, timed_out, error), ...]`` in call order (see ``_Pool.run``).
    ``fn`` is ``"module:function"``, importable in a fresh interpreter (the caller's ``sys.path``
    is passed on); arguments and results are JSON. This is the pool every reward runs under."""
    n = num_workers if num_workers is not None else min(4, os.cpu_count() or 1)
    with _POOL_LOCK:
        out = _get_pool(max(1, n)).run([(i, fn, a) for i, a in enumerate(calls)], timeout_s)
    return [out[i] for i in range(len(calls))]


def _resolve(path: str):
    import importlib

    module, _, name = path.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _worker_main() -> None:
    """Worker loop: read ``{"id", "fn", "args"}`` lines, write ``{"id", "result"}`` (or
    ``{"id", "error"}``) lines."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints (sympy, warnings) go to stderr, not into the protocol
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY or soft > _WORKER_MEM_BYTES:
            resource.setrlimit(resource.RLIMIT_AS, (_WORKER_MEM_BYTES, hard))
    except (ImportError, ValueError, OSError):
        pass
    parent = os.getppid()

    def orphan_watch():  # exit if the parent dies without closing our stdin
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=orphan_watch, daemon=True).start()
    sys.path.extend(p for p in os.environ.get("URZ_WORKER_PATH", "").split(os.pathsep) if p and p not in sys.path)
    _equiv("x+1", "1+x")  # import sympy and warm the parser before reporting ready
    fns = {_VERDICT: _verdict}  # loaded before "ready"
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        try:
            if msg["fn"] not in fns:  # first call: import, then tell the parent to start the clock
                fns[msg["fn"]] = _resolve(msg["fn"])
                out.write(json.dumps({"loaded": msg["id"]}).encode() + b"\n")
                out.flush()
            reply = json.dumps({"id": msg["id"], "result": fns[msg["fn"]](*msg["args"])}, allow_nan=False)
        except Exception as e:  # noqa: BLE001 - reported to the parent, which decides
            reply = json.dumps({"id": msg.get("id"), "error": f"{type(e).__name__}: {e}"[:500]})
        out.write(reply.encode() + b"\n")
        out.flush()
