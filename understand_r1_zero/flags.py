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


def check_model_path(spec: str, flag: str, also: str = "") -> None:
    """Raise ValueError (one line, naming the fix) unless ``spec`` is a model that can load: a local
    HF model directory, or a hub name that is cached or reachable. Cheap (no weights are read), so
    both CLIs call it before anything heavy, and before writing any output.

    Caught here: a missing path; a training run's ``--save_path`` or one of its checkpoints (their
    ``config.json`` looks like a model's; the model is in ``checkpoints/step_XXXXX/model``); a
    directory that is not a model; a hub name with no network and no cached copy."""
    import json
    import os

    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        if os.path.isdir(os.path.join(path, "checkpoints")) or os.path.exists(os.path.join(path, "metrics.jsonl")):
            from .schema import checkpoint_dirs

            done = checkpoint_dirs(path, containing="model")
            where = (f"its models are in {spec.rstrip('/')}/checkpoints/step_XXXXX/model (latest: "
                     f"{os.path.join(spec.rstrip('/'), 'checkpoints', os.path.basename(done[-1]), 'model')})") \
                if done else "it has no saved model yet"
            raise ValueError(f"{flag} {spec!r} is a training run, not a model; {where}")
        if os.path.exists(os.path.join(path, "trainer_state.json")) and os.path.isdir(os.path.join(path, "model")):
            raise ValueError(f"{flag} {spec!r} is a training checkpoint; its model is "
                             f"{os.path.join(spec.rstrip('/'), 'model')}")
        cfg = os.path.join(path, "config.json")
        if not os.path.exists(cfg):
            raise ValueError(f"{flag} {spec!r} has no config.json; point it to a HF model directory")
        try:
            model_type = json.load(open(cfg)).get("model_type")
        except (ValueError, AttributeError):
            model_type = None
        if not model_type:
            raise ValueError(f"{flag} {spec!r} is not a HF model directory (its config.json has no "
                             f"model_type); point it to one saved with save_pretrained")
        return
    if spec.startswith(("/", ".", "~")) or spec.count("/") != 1:
        raise ValueError(f"{flag} {spec!r} does not exist; pass a local HF model directory"
                         f"{',' if also else ' or'} a hub name like Qwen/Qwen2.5-Math-1.5B{also}")
    _check_hub_model(spec, flag)


def _check_hub_model(repo: str, flag: str) -> None:
    """A hub name must be in the local cache or reachable: otherwise transformers fails deep in model
    loading, after retries, with a long traceback."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    cached = huggingface_hub.try_to_load_from_cache(repo, "config.json")
    if isinstance(cached, str):
        return
    if constants.HF_HUB_OFFLINE or not reachable(constants.ENDPOINT):  # no retries for minutes
        raise ValueError(f"{flag} {repo!r}: could not reach the model hub ({constants.ENDPOINT}"
                         f"{', HF_HUB_OFFLINE is set' if constants.HF_HUB_OFFLINE else ''}), and it is not "
                         f"in the local cache; pass a local model directory")
    try:
        huggingface_hub.hf_hub_download(repo, "config.json", etag_timeout=10)
    except GatedRepoError:
        raise ValueError(f"{flag} {repo!r} is gated on the model hub: accept its licence there and "
                         f"`huggingface-cli login`, or pass a local directory") from None
    except RepositoryNotFoundError:
        raise ValueError(f"{flag} {repo!r} is not a model on the hub (names are case-sensitive) and not "
                         f"a local directory") from None
    except LocalEntryNotFoundError:
        raise ValueError(f"{flag} {repo!r}: could not reach the model hub, and it is not in the local "
                         f"cache; pass a local model directory") from None
    except Exception as e:  # noqa: BLE001 - network errors come in many types
        raise ValueError(f"{flag} {repo!r}: could not reach the model hub ({type(e).__name__}), and it "
                         f"is not in the local cache; pass a local model directory") from None


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname, u.port or (443 if u.scheme == "https" else 80)),
                                      timeout=timeout):
            return True
    except (OSError, TypeError):
        return False
