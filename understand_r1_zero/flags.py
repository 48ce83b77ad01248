"""Dataclass-as-CLI helpers shared by ``train_zero_math.py`` and ``evaluate_model.py``.

A config is a dataclass whose fields are the flags, each followed by a one-line docstring (its
``--help`` text). python-fire guesses a flag's type from its text (``--tasks aime,amc`` arrives as
a tuple, ``--temperature 0`` as an int, ``--save_path 1`` as an int), so ``coerce_fields``
converts every field to its annotation and fails naming the flag.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import typing


def coerce(name: str, value, hint):
    """``value`` as type ``hint`` (bool, int, float or str), or ValueError naming ``--name``."""
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "y", "on"):
                return True
            if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "n", "off", ""):
                return False
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            raise ValueError
        if isinstance(value, bool):  # True is an int in Python, never a valid number flag
            raise ValueError
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            if isinstance(value, (list, tuple)):
                return ",".join(str(v) for v in value)
            return "" if value is None else str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise ValueError(f"--{name} expects {hint.__name__}, got {value!r}")


def coerce_fields(obj) -> None:
    """Coerce every field of dataclass instance ``obj`` to its annotated type, in place."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        setattr(obj, f.name, coerce(f.name, getattr(obj, f.name), hints[f.name]))


def parse(cls, flags: dict):
    """``cls(**flags)``; an unknown flag is a ValueError naming the closest valid ones."""
    names = [f.name for f in dataclasses.fields(cls)]
    for k in flags:
        if k not in names:
            close = difflib.get_close_matches(k, names, n=3)
            hint = f"; did you mean {', '.join('--' + c for c in close)}?" if close else \
                "; run with --help to list the flags"
            raise ValueError(f"unknown flag --{k}{hint}")
    return cls(**flags)


def help_text(cls) -> str:
    """One line per flag: name, type, default and its docstring."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {a.target.id: b.value.value for a, b in zip(body, body[1:])
            if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)}
    hints = typing.get_type_hints(cls)
    return "\n".join(f"  --{f.name} ({hints[f.name].__name__}, default {f.default!r}): {docs.get(f.name, '')}"
                     for f in dataclasses.fields(cls))


def wants_help(flags: dict) -> bool:
    """fire hands ``--help`` to a ``**flags`` function as an ordinary flag."""
    return bool(flags.keys() & {"help", "h"})
