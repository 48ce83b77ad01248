"""A run's directory: one run per ``--save_path``, atomic checkpoints, exact resume.

    save_path/config.json           the flags (TrainConfig.to_dict)
    save_path/metrics.jsonl         one row per step (schema.METRICS_*)
    save_path/rollouts/step_XXXXX.jsonl
    save_path/checkpoints/step_XXXXX/{model/, deepspeed/, rng_rank<r>.pt, trainer_state.json}
    (under --lora_rank: adapter/ in every checkpoint, deepspeed/ holds the adapter and its
    optimizer state alone, and model/, the merged HF model, is written by the final save only)

A checkpoint directory is written as ``step_XXXXX.tmp`` and renamed when every rank's files are
in it, so it is either complete or absent. ``trainer_state.json`` holds the step, the prompt
position, the world size, the algorithm's tracker state and the config; a resume restores all
of them, the RNGs, and cuts ``metrics.jsonl`` and the rollouts back to the checkpoint's step.
Every check here needs only the flags and the files, so its errors (ValueError, one line)
come before any model loads.
"""

from __future__ import annotations

import json
import os
import random
import shutil

from . import schema

RUN_FILES = ("config.json", "metrics.jsonl", "rollouts", "checkpoints", "wandb", "tb")


def find_resume(cfg) -> str | None:
    """The checkpoint ``--resume`` names (``auto``: the latest full one under save_path), or None."""
    if not cfg.resume:
        return None
    if cfg.resume != "auto":
        if not os.path.isdir(os.path.join(cfg.resume, "deepspeed")):
            raise ValueError(f"--resume {cfg.resume!r} is not a resumable checkpoint (no deepspeed/ state; "
                             f"runs with --save_final_only_model keep only the model); pass a "
                             f"save_path/checkpoints/step_XXXXX dir or 'auto'")
        return cfg.resume
    done = schema.checkpoint_dirs(cfg.save_path, containing="deepspeed")
    return done[-1] if done else None  # auto with nothing saved: fresh start


def check_save_path(cfg, resume) -> bool:
    """Refuse to mix two runs in one --save_path. Returns whether rank 0 must clear it first.

    * resuming: the checkpoint's stored config must match the flags that define the run
      (``config.RUN_KEYS``) and the number of processes; otherwise one line naming the flags.
    * a fresh run into a directory holding another run's files: refused, naming --resume auto,
      a new path and --overwrite; ``--overwrite True`` clears them.
    * ``--resume auto`` with no checkpoint yet (a run that died before its first save): its
      leftovers are cleared if its config.json matches, else refused as above."""
    root = cfg.save_path
    present = [f for f in RUN_FILES if os.path.exists(os.path.join(root, f))]
    ck_root = os.path.join(root, "checkpoints")
    saved = [os.path.basename(d) for d in schema.checkpoint_dirs(root)]  # full and model-only (final) ones
    if resume:
        if cfg.overwrite:
            raise ValueError("--overwrite True deletes the run that --resume continues; pass one of them")
        name = os.path.basename(os.path.normpath(resume))
        later = [d for d in saved if d > name] if os.path.dirname(os.path.normpath(resume)) == \
            os.path.normpath(ck_root) else []
        if later:
            raise ValueError(f"--resume: {ck_root} has checkpoints after {name} ({', '.join(later)}; a model-only "
                             f"one is a finished run's final save), which the resumed run would mix with; "
                             f"resume the latest, or move them away")
        state = json.load(open(os.path.join(resume, "trainer_state.json")))
        _check_lora_kind(cfg, resume, int((state.get("config") or {}).get("lora_rank", 0)))
        diff = cfg.run_diff(state.get("config") or {})
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if state.get("world_size", world) != world:
            diff.append(f"processes {state['world_size']} -> {world}")
        if diff:
            raise ValueError(f"--resume: the checkpoint {resume} belongs to a run with other flags "
                             f"({'; '.join(diff)}); rerun with that run's flags, or start a new run in "
                             f"a new --save_path (or --overwrite True)")
        return False
    if not present:
        return False
    if cfg.overwrite:
        return True
    stored = os.path.join(root, "config.json")
    if cfg.resume == "auto" and os.path.exists(stored):
        if saved:  # checkpoints but none resumable: a finished --save_final_only_model run
            raise ValueError(f"--save_path {root} holds a finished run ({saved[-1]} holds only the model, no "
                             f"optimizer state to resume from); pick a new --save_path or pass --overwrite True")
        try:
            diff = cfg.run_diff(json.load(open(stored)))
        except ValueError:
            diff = ["config.json unreadable"]
        if not diff:
            return True  # this run's own leftovers from before its first checkpoint
    raise ValueError(f"--save_path {root} holds another run ({', '.join(present)}); continue it with "
                     f"--resume auto, pick a new --save_path, or pass --overwrite True to delete it")


def _check_lora_kind(cfg, resume: str, saved_rank: int) -> None:
    """A LoRA checkpoint holds the adapter, a full one every weight: neither resumes the other."""
    if bool(saved_rank) == bool(cfg.lora_rank):
        return
    made = f"with LoRA (--lora_rank {saved_rank})" if saved_rank else "without LoRA (full fine-tuning)"
    fix = f"pass --lora_rank {saved_rank}" if saved_rank else "drop --lora_rank"
    raise ValueError(f"--resume: the checkpoint {resume} was made {made}, but this run sets --lora_rank "
                     f"{cfg.lora_rank}; {fix} to continue it, or start a new run in a new --save_path")


def prepare_run_dir(cfg, log) -> None:
    """Rank 0, once every input is checked: clear the directory if ``check_save_path`` said so
    (--overwrite, or this run's own leftovers), then write config.json."""
    if cfg.clear_save_path:
        log(f"[setup] clearing {', '.join(f for f in RUN_FILES if os.path.exists(os.path.join(cfg.save_path, f)))} "
            f"in {cfg.save_path}")
        for f in RUN_FILES:
            p = os.path.join(cfg.save_path, f)
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.remove(p)
    os.makedirs(cfg.save_path, exist_ok=True)
    cfg.save(os.path.join(cfg.save_path, "config.json"))


def _rng_state() -> dict:
    import numpy as np
    import torch

    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def save(cfg, step: int, *, learner, tokenizer, position: int, tracker, rank: int, world: int,
         model_only: bool = False, last: bool = True) -> str:
    """Write checkpoints/step_XXXXX atomically (collective: every rank calls it). ``last``: the
    run's last save, the one that always holds the HF model (LoRA: merged)."""
    import torch
    import torch.distributed as dist

    root = os.path.join(cfg.save_path, "checkpoints")
    final, tmp = os.path.join(root, f"step_{step:05d}"), os.path.join(root, f"step_{step:05d}.tmp")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    dist.barrier()
    if not model_only:
        learner.save(tmp, {"step": step})  # optimizer, scheduler, (sharded) module; LoRA: the adapter's
    adapter = learner.adapter_state_dict(rank)  # rank 0's; None elsewhere and without LoRA
    sd = learner.full_state_dict(rank) if last or not cfg.lora_rank else None  # (collective: rank-independent)
    torch.save(_rng_state(), os.path.join(tmp, f"rng_rank{rank}.pt"))
    dist.barrier()  # every rank's files are in tmp before rank 0 renames it
    if rank == 0:
        if sd is not None:
            learner.save_pretrained(os.path.join(tmp, "model"), sd)
            tokenizer.save_pretrained(os.path.join(tmp, "model"))
        if adapter is not None:
            learner.save_adapter(os.path.join(tmp, "adapter"), adapter)
        state = {"step": step, "data_position": position, "world_size": world, "model_only": model_only,
                 "tracker": tracker.state_dict() if tracker else None, "config": cfg.to_dict()}
        with open(os.path.join(tmp, "trainer_state.json"), "w") as f:
            json.dump(state, f, indent=1)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)  # atomic: a checkpoint dir either is complete or is absent
    dist.barrier()
    return final


def restore(resume: str, cfg, *, learner, order, tracker, rank: int) -> int:
    """Load the checkpoint ``resume`` into the learner, prompt order, tracker and RNGs; rank 0
    drops the metrics rows and rollouts logged after it (the resumed steps rewrite them).
    Returns its step."""
    import numpy as np
    import torch

    state = json.load(open(os.path.join(resume, "trainer_state.json")))
    learner.load(resume)
    order.position = state["data_position"]
    if tracker is not None and state.get("tracker"):
        tracker.load_state_dict(state["tracker"])
    rng = torch.load(os.path.join(resume, f"rng_rank{rank}.pt"), weights_only=False)
    torch.set_rng_state(rng["torch"]), np.random.set_state(rng["numpy"]), random.setstate(rng["python"])
    step = state["step"]
    if rank == 0:
        metrics = os.path.join(cfg.save_path, "metrics.jsonl")
        if os.path.exists(metrics):
            rows = [r for r in schema.read_jsonl(metrics) if r["step"] <= step]
            with open(metrics + ".tmp", "w") as f:
                f.writelines(schema.dumps(r) + "\n" for r in rows)
            os.replace(metrics + ".tmp", metrics)
        for p in schema.rollout_files(cfg.save_path):  # appending to them would double them
            if schema.rollout_step(p) > step:
                os.remove(p)
    return step
