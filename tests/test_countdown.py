"""Countdown: the generator, the expression parser, the reward and the template (no model)."""

import itertools
import json
import random
import subprocess
import sys
from fractions import Fraction

import pytest

from understand_r1_zero import countdown as cd
from understand_r1_zero.math_grader import extract_answer
from understand_r1_zero.templates import ANSWER_TAG, get_template

REF = cd.make_reference([19, 36, 55, 7], 65)


def respond(answer: str) -> str:
    """A response in the countdown template's format (the prompt already opened <think>)."""
    return f" 19 + 36 = 55 ... </think> <answer>{answer}</answer>"


def grade(answer, ref=REF, **kw):
    return cd.countdown_reward(respond(answer), ref, **kw)


# ------------------------------------------------------------------ correct answers
@pytest.mark.parametrize("answer,ref", [
    ("55 + 36 - 19 - 7", REF),
    ("(55 + 36) - (19 + 7)", REF),
    ("36 - 7 + 55 - 19", REF),  # order of the numbers is free
    ("((55 - 7) - 19) + 36", REF),
    ("5 * (5 - 1 / 5)", cd.make_reference([1, 5, 5, 5], 24)),  # 24/5 in the middle
    ("8 / (3 - 8 / 3)", cd.make_reference([3, 3, 8, 8], 24)),  # 1/3 in the middle
    ("(7 - 5 / 5) * 4", cd.make_reference([4, 5, 5, 7], 24)),
    ("6 \\times 4 \\div (3 - 2)", cd.make_reference([2, 3, 4, 6], 24)),
    ("6 × 4 ÷ (3 − 2)", cd.make_reference([2, 3, 4, 6], 24)),
    ("55 + 36 - 19 - 7 = 65", REF),  # a trailing "= target" is stripped
    ("  55+36-19-7  ", REF),
])
def test_correct(answer, ref):
    reward, info = grade(answer, ref)
    assert reward == 1.0 and info["correct"] and info["formatted"] and info["reason"] == "ok"
    assert info["answer"] == answer.strip() and info["timeout"] is False


def test_boxed_inside_the_answer_tag_is_read():
    assert grade("\\boxed{55 + 36 - 19 - 7}")[0] == 1.0


# ------------------------------------------------------------------ wrong answers
@pytest.mark.parametrize("answer,reason", [
    ("55 - 36 + 19 - 7", "value: 31 != target 65"),
    ("55 + 36 - 19 / 7", "value: 618/7 != target 65"),
    ("55 + 7 - 19 / 36 + 0 * 0", "numbers"),  # extra numbers
    ("55 + 36 - 19 * 7", "value: -42 != target 65"),
    ("55 - 36 + 19 + 19", "numbers: used [19, 19, 36, 55]"),  # reused, 7 missing
    ("55 + 7 + 3", "numbers"),  # missing, and 3 is not in the list
    ("55 - 36 + 19 + 7 + 0", "numbers"),  # an extra number
    ("(19 + 36) / (55 - 55) + 7", "numbers"),
    ("55 + 36 - 19 - 7 = 66", "value: claims 66, target 65"),
    ("55 - 36 + 19 = 65 = 65", "parse error: more than one '='"),
    ("-36 + 55 + 19 + 7", "parse error: unary minus is not allowed"),  # TinyZero's eval takes it
    ("55 - -36 + 19 + 7", "parse error: unary minus"),
    ("55 - 36 + 19 + 7.0", "parse error: unexpected character '.'"),
    ("55 - 36 + 19 + 7 ** 1", "parse error"),  # no powers
])
def test_wrong(answer, reason):
    reward, info = grade(answer)
    assert reward == 0.0 and info["formatted"] and not info["correct"]
    assert info["reason"].startswith(reason), info["reason"]


def test_division_by_zero():
    reward, info = grade("6 / (3 - 3) + 4", cd.make_reference([3, 3, 4, 6], 6))
    assert reward == 0.0 and info["reason"] == "division by zero"
    with pytest.raises(cd.DivisionByZero):
        cd.evaluate_expression("6 / (3 - 3)")
    assert cd.numbers_used("6 / (3 - 3)") == [6, 3, 3]


@pytest.mark.parametrize("expr,reason", [
    ("(1+2", "unbalanced parentheses"),
    ("1+2)", "unbalanced parentheses"),
    ("1++2", "expected a number or '(' but found '+'"),
    ("2 3", "unexpected '3' after a complete expression"),
    ("2(3)", "unexpected '('"),
    ("abc", "unexpected character 'a'"),
    ("", "empty expression"),
    ("   ", "empty expression"),
    ("1 +", "ends where a number was expected"),
    ("__import__('os').system('x')", "unexpected character '_'"),
    ("1" + "+1" * 5000, "longer than 256 characters"),
    ("(" * 1000 + "1" + ")" * 1000, "longer than 256 characters"),
    ("(" * 40 + "1" + ")" * 40, "parentheses nested deeper than 32"),
    ("1" * 200, "a literal longer than 10 digits"),
    ("\u0663 + 1", "unexpected character"),  # a non-ASCII digit
])
def test_malformed_raises_value_error(expr, reason):
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace("+", r"\+")):
        cd.evaluate_expression(expr)
    reward, info = grade(expr)
    assert reward == 0.0 and not info["correct"]
    if expr.strip():
        assert info["formatted"] and info["reason"].startswith("parse error: ")


def test_evaluate_exact_and_precedence():
    assert cd.evaluate_expression("1 + 2 * 3") == 7
    assert cd.evaluate_expression("8 - 4 - 2") == 2  # left associative
    assert cd.evaluate_expression("8 / 4 / 2") == 1
    assert cd.evaluate_expression("1 / 3 + 1 / 6") == Fraction(1, 2)
    assert cd.evaluate_expression("(" * 32 + "1" + ")" * 32) == 1  # the depth cap itself is fine
    assert cd.numbers_used("(19 + 7) * 3 - 19") == [19, 7, 3, 19]


def test_hostile_responses_never_raise():
    for response in ["", None, 12, "<answer>1</answer>", "</think>" * 10000,
                     "</think><answer>" + "(" * 100000 + "</answer>",
                     "</think><answer>" + "9" * 100000 + "</answer>",
                     "</think><answer>1=" + "9" * 1000 + "</answer>",
                     "</think><answer>\x00\uffff</answer>"]:
        reward, info = cd.countdown_reward(response, REF)
        assert reward == 0.0 and not info["correct"]


# ------------------------------------------------------------------ format and format_reward
def test_no_answer_tag_is_unformatted():
    for response in ["55 - 36 + 19 + 7", "</think> 55 - 36 + 19 + 7",
                     "<answer>55 - 36 + 19 + 7</answer>"]:  # no </think> before it
        reward, info = cd.countdown_reward(response, REF, format_reward=0.1)
        assert reward == 0.0 and info == {"formatted": False, "answer": None, "correct": False,
                                          "timeout": False, "reason": "no answer"}


def test_format_reward():
    assert grade("garbage")[0] == 0.0 and grade("garbage")[1]["formatted"]
    assert grade("garbage", format_reward=0.1)[0] == 0.1
    assert grade("55 - 36 + 19 - 7", format_reward=0.1)[0] == 0.1
    assert grade("55 + 36 - 19 - 7", format_reward=0.1)[0] == 1.0


# ------------------------------------------------------------------ the reference
def test_reference_round_trips():
    assert REF == '{"numbers": [19, 36, 55, 7], "target": 65}'
    assert cd.parse_reference(REF) == ([19, 36, 55, 7], 65)
    assert cd.parse_reference(json.loads(REF)) == ([19, 36, 55, 7], 65)
    assert cd.countdown_reward(respond("55 + 36 - 19 - 7"), json.loads(REF))[0] == 1.0


@pytest.mark.parametrize("bad", ["65", "not json", "[1, 2]", 65, None, '{"numbers": [1, 2]}',
                                 '{"numbers": [], "target": 3}', '{"numbers": [1, "2"], "target": 3}',
                                 '{"numbers": [1, 2.5], "target": 3}', '{"numbers": [true], "target": 1}',
                                 '{"numbers": [1, -2], "target": 3}', {"numbers": [1, 2], "target": "3"}])
def test_parse_reference_errors(bad):
    with pytest.raises(ValueError, match=r"countdown reference .* expected a JSON object"):
        cd.parse_reference(bad)
    with pytest.raises(ValueError):
        cd.countdown_reward(respond("1 + 2"), bad)


def test_reference_error_is_one_short_line():
    with pytest.raises(ValueError) as e:
        cd.parse_reference("x\n" * 1000)
    assert "\n" not in str(e.value) and len(str(e.value)) < 200


# ------------------------------------------------------------------ the generator
def solve(nums: list[Fraction], target: Fraction) -> str | None:
    """Brute force, independent of the generator: combine any ordered pair with any operator
    until one value is left (negative and fractional intermediates allowed)."""
    def rec(items):
        if len(items) == 1:
            return items[0][1] if items[0][0] == target else None
        for i, j in itertools.permutations(range(len(items)), 2):
            (a, ea), (b, eb) = items[i], items[j]
            rest = [x for k, x in enumerate(items) if k not in (i, j)]
            for op, v in [("+", a + b), ("-", a - b), ("*", a * b), ("/", a / b if b else None)]:
                if v is not None and (found := rec(rest + [(v, f"({ea} {op} {eb})")])):
                    return found
        return None
    return rec([(Fraction(n), str(n)) for n in nums])


def test_generated_instances_are_solvable_and_well_formed():
    rng = random.Random(1)
    for k in range(50):
        row = cd.make_problem(rng, n_numbers=None if k % 3 else 3 + k % 2)
        numbers, target = cd.parse_reference(row["answer"])
        assert len(numbers) in (3, 4) and all(1 <= x <= 99 for x in numbers) and 1 <= target <= 999
        assert row["answer"] == cd.make_reference(numbers, target)
        assert row["problem"] == (f"Using the numbers {numbers}, create an equation that equals "
                                  f"{target}. You can use basic arithmetic operations (+, -, *, /) "
                                  "and each number can only be used once.")
        found = solve(numbers, target)
        assert found is not None, row
        assert cd.countdown_reward(respond(found), row["answer"])[0] == 1.0  # the parser agrees


def test_make_problem_needs_two_numbers():
    with pytest.raises(ValueError, match="at least 2 numbers"):
        cd.make_problem(random.Random(0), n_numbers=1)


def test_generator_solution_is_a_correct_answer():
    rng = random.Random(2)
    for n in [3, 4] * 20:
        numbers, target, expr = cd._draw(rng, n)
        assert len(numbers) == n
        assert cd.countdown_reward(respond(expr), cd.make_reference(numbers, target))[0] == 1.0


def test_task_is_seeded_deterministic_and_disjoint():
    train, evals = cd.make_task(300, 40, seed=0)
    assert (train, evals) == cd.make_task(300, 40, seed=0)
    assert cd.make_task(300, 40, seed=1) != (train, evals)
    assert len(train) == 300 and len(evals) == 40
    key = lambda r: (tuple(sorted(cd.parse_reference(r["answer"])[0])), cd.parse_reference(r["answer"])[1])  # noqa: E731
    tk, ek = {key(r) for r in train}, {key(r) for r in evals}
    assert len(tk) == 300 and len(ek) == 40 and not tk & ek
    other_train, _ = cd.make_task(3000, 0, seed=7)  # the split is by hash: no seed leaks eval
    assert not {key(r) for r in other_train} & ek
    counts = {len(cd.parse_reference(r["answer"])[0]) for r in train}
    assert counts == {3, 4}


def test_countdown_datasets_schema():
    train, evals = cd.countdown_datasets(seed=0, n_train=20, n_eval=5)
    assert train.column_names == ["problem", "answer"] and len(train) == 20 and len(evals) == 5
    assert cd.parse_reference(evals[0]["answer"])


# ------------------------------------------------------------------ the template and imports
def test_countdown_template():
    t = get_template("countdown", for_training=True)
    assert t.train and t.stop == ("</answer>",) and t.include_stop and t.extraction == ANSWER_TAG
    q = cd.make_problem(random.Random(0))["problem"]
    p = t(q)
    assert p.startswith("A conversation between User and Assistant. The user asks a question")
    assert f"\nUser: {q} Show your work in <think> </think> tags." in p
    assert p.endswith("<answer> (1 + 2) / 3 </answer>.\nAssistant: Let me solve this step by step.\n<think>")
    # a sampled response stops at, and keeps, "</answer>"
    assert extract_answer(" 3 * 4 = 12 </think>\n<answer> (1 + 2) * 4 </answer>", "countdown") == "(1 + 2) * 4"


def test_import_does_not_load_torch_or_datasets():
    code = ("import sys, understand_r1_zero.countdown; "
            "assert 'torch' not in sys.modules and 'datasets' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
