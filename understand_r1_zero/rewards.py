"""The reward seam: reward functions registered by name, chosen with ``--reward``.

Training, its periodic evaluation and ``evaluate_model.py`` all score responses with
``compute_rewards(name, responses, references, template)``, which returns one
``(reward, info)`` per response. ``info`` carries at least ``formatted`` (an answer was
extracted), ``answer`` (the extracted answer, or None) and ``timeout``; the rollout logs store
``answer`` and ``formatted``, ``samples.jsonl`` also ``grade_timeout``. Everywhere (training's
``actor/accuracy``, evaluation's accuracy) a response counts as correct when its reward is > 0.

A reward is one function of one response, ``fn(response, reference, template) -> (reward,
info)``, registered with one line::

    register_reward(Reward("countdown", countdown_reward, check_reference=parse_reference))

Every item runs in ``math_grader``'s killable worker pool (``run_killable``): an item past
``--grade_timeout`` seconds has its worker killed and scores 0 with ``info["timeout"] = True``,
whatever the reward is. So ``fn`` must be importable by its module path in a fresh interpreter
(a module-level function of an importable module, not one defined in ``__main__``, a
notebook or another function), and take and return JSON values (a result JSON cannot carry,
NaN included, stops the run naming the item). ``num_workers=0`` runs it in this process instead
(no timeout; the result goes through JSON all the same). A reward may bring its own batch function (``batch``): the math reward settles
the easy items in-process and sends only the sympy ones to the pool.

The module imports no torch (the grader must not need it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from . import countdown, math_grader


@dataclass(frozen=True)
class Reward:
    """A reward: ``fn(response, reference, template) -> (reward, info)`` for one response.

    ``batch(responses, references, template, timeout_s, num_workers)``: a batch version
    (default: every item through the killable pool). ``check_reference(ref)``: raises ValueError on a malformed reference, so bad data fails at
    load time, not mid-run. ``doc``: one line for ``--help``."""
    name: str
    fn: Callable[[str, Any, str], tuple[float, dict]]
    batch: Callable[..., list] | None = None
    check_reference: Callable[[Any], Any] | None = None
    doc: str = ""


REWARDS: dict[str, Reward] = {}


def register_reward(reward: Reward) -> Reward:
    """Add a reward to the registry (``--reward NAME``). Refuses a name already taken and a
    function the worker pool could not import."""
    if reward.name in REWARDS:
        raise ValueError(f"reward {reward.name!r} is already registered")
    module, qualname = getattr(reward.fn, "__module__", "__main__"), getattr(reward.fn, "__qualname__", "<?>")
    if reward.batch is None and (module == "__main__" or "<" in qualname):
        raise ValueError(f"reward {reward.name!r}: {module}.{qualname} cannot be imported by the grading "
                         f"workers (a lambda, a nested function or one in __main__); define it at the top "
                         f"level of a module, or give the Reward a batch function")
    REWARDS[reward.name] = reward
    return reward


def get_reward(name: str) -> Reward:
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; valid: {', '.join(REWARDS)}")
    return REWARDS[name]


def _no_answer(timed_out: bool) -> dict:
    return {"formatted": False, "answer": None, "correct": False, "timeout": timed_out}


def pool_batch(fn: Callable, responses, references, template: str, timeout_s: float,
               num_workers: int | None) -> list[tuple[float, dict]]:
    """``fn`` over a batch, each item in the killable worker pool (in-process when
    ``num_workers == 0``). A killed item scores 0 with ``timeout`` True; a reward that raises is
    a bug in it and stops the run, naming the item."""
    calls = [[r, ref, template] for r, ref in zip(responses, references)]
    path = f"{fn.__module__}:{fn.__qualname__}"
    if num_workers == 0:
        done = []
        for c in calls:
            try:  # through JSON, as from a worker, so both paths accept the same rewards
                done.append((json.loads(json.dumps(fn(*c), allow_nan=False)), False, None))
            except Exception as e:  # noqa: BLE001 - named below
                done.append((None, False, f"{type(e).__name__}: {e}"))
    else:
        done = math_grader.run_killable(path, calls, timeout_s, num_workers)
    out = []
    for i, (result, timed_out, error) in enumerate(done):
        if error is not None:
            raise RuntimeError(f"reward {path} raised on response #{i} ({error}); rewards must score "
                               f"any model text, so fix the reward (or its reference data)")
        out.append((0.0, _no_answer(True)) if timed_out else (float(result[0]), result[1]))
    return out


def compute_rewards(name: str, responses, references, template: str, *,
                    timeout_s: float = math_grader.DEFAULT_TIMEOUT_S,
                    num_workers: int | None = None) -> list[tuple[float, dict]]:
    """``(reward, info)`` per response under the registered reward ``name`` (see the module doc)."""
    if len(responses) != len(references):
        raise ValueError(f"{len(responses)} responses but {len(references)} references")
    reward = get_reward(name)
    if reward.batch is not None:
        return reward.batch(responses, references, template=template, timeout_s=timeout_s,
                            num_workers=num_workers)
    return pool_batch(reward.fn, responses, references, template, timeout_s, num_workers)


def check_references(name: str, references, what: str) -> None:
    """Raise a one-line ValueError for the first malformed reference under reward ``name``."""
    check = get_reward(name).check_reference
    if check is None:
        return
    for i, ref in enumerate(references):
        try:
            check(ref)
        except ValueError as e:
            raise ValueError(f"{what} row {i}: {e}") from None


def reward_help() -> str:
    """One line per registered reward, for ``--help``."""
    return "\n".join(f"  {r.name:<10} {r.doc}" for r in REWARDS.values())


register_reward(Reward("math", math_grader.reward_fn, batch=math_grader.grade_batch,
                       doc="the math grader (math_grader.py): 1 if the extracted answer equals the reference, else 0"))
register_reward(Reward("countdown", countdown.countdown_reward,
                       check_reference=countdown.parse_reference,
                       doc="Countdown (countdown.py): 1 if the expression uses each number once and equals the target"))
