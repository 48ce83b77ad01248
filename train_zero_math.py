"""R1-Zero-style RL on math: ``python train_zero_math.py --flag value ...``.

With no flags it runs the embedded CPU demo: a tiny model pretrained here on synthetic
arithmetic, tuned with Dr. GRPO. Flags are the fields of ``understand_r1_zero.config.TrainConfig``
(``--help`` lists them). Multi-process: ``torchrun --nproc_per_node N train_zero_math.py ...`` or
``deepspeed --num_gpus N train_zero_math.py ...``; each rank colocates its own actor and owns
``rollout_batch_size / N`` prompts per step.
"""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


class UserError(Exception):
    """Bad flags or inputs: reported as one line, before any model loads."""


def peak_memory_gib(device) -> float:
    """This rank's peak memory so far: allocated GPU memory on CUDA, the process's peak RSS on
    CPU (the one device branch of the loop; scripts/gpu_check.sh prints the CUDA figure)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _seed_for(seed: int, step: int, rank: int) -> int:
    # Sampling is seeded per (run, step, rank), so a resumed run samples exactly what the
    # uninterrupted one did without restoring sampler RNG state.
    return (seed * 1_000_003 + step * 1009 + rank * 17) % (2**31 - 1)


def _resolve_pretrain(cfg, rank):
    import torch.distributed as dist

    if cfg.pretrain == "synthetic":
        from understand_r1_zero.synthetic import build_base_model

        path = build_base_model() if rank == 0 else None
        dist.barrier()
        return path if rank == 0 else build_base_model()
    return cfg.pretrain


def _check_pretrain(spec: str):
    from understand_r1_zero.flags import check_model_path

    if spec != "synthetic":
        check_model_path(spec, "--pretrain", also=", or 'synthetic'")


def _find_resume(cfg):
    if not cfg.resume:
        return None
    if cfg.resume != "auto":
        if not os.path.isdir(os.path.join(cfg.resume, "deepspeed")):
            raise UserError(f"--resume {cfg.resume!r} is not a resumable checkpoint (no deepspeed/ state; "
                            f"runs with --save_final_only_model keep only the model); pass a "
                            f"save_path/checkpoints/step_XXXXX dir or 'auto'")
        return cfg.resume
    from understand_r1_zero.schema import checkpoint_dirs

    done = checkpoint_dirs(cfg.save_path, containing="deepspeed")
    return done[-1] if done else None  # auto with nothing saved: fresh start


def _check_wandb(cfg, rank0: bool) -> None:
    """--use_wb: wandb must import (fail here, before any model loads), and without an API key
    or a reachable server it logs offline into save_path/wandb (sync later with `wandb sync`)."""
    if not cfg.use_wb:
        return
    from understand_r1_zero.flags import reachable

    try:
        import wandb  # noqa: F401
    except ImportError:
        raise UserError("--use_wb True needs wandb, which is not installed: `pip install wandb` "
                        "(it is a dependency of this package) or pass --use_wb False") from None
    if os.environ.get("WANDB_MODE"):
        return  # the user chose (online, offline or disabled)
    why = None
    if not (os.environ.get("WANDB_API_KEY") or _netrc_has_wandb()):
        why = "no WANDB_API_KEY and no `wandb login`"
    elif not reachable(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")):
        why = "the wandb server is not reachable"
    if why:
        os.environ["WANDB_MODE"] = "offline"
        if rank0:
            print(f"[wandb] {why}: logging offline to {os.path.join(cfg.save_path, 'wandb')} "
                  f"(upload later with `wandb sync`)", flush=True)


def _netrc_has_wandb() -> bool:
    import netrc

    try:
        hosts = netrc.netrc(os.environ.get("NETRC")).hosts
    except (OSError, netrc.NetrcParseError):
        return False
    return any("wandb" in h for h in hosts)


RUN_FILES = ("config.json", "metrics.jsonl", "rollouts", "checkpoints", "wandb", "tb")


def _check_save_path(cfg, resume) -> bool:
    """Refuse to mix two runs in one --save_path. Returns whether rank 0 must clear it first.

    * resuming: the checkpoint's stored config must match the flags that define the run
      (``config.RUN_KEYS``) and the number of processes; otherwise one line naming the flags.
    * a fresh run into a directory holding another run's files: refused, naming --resume auto,
      a new path and --overwrite; ``--overwrite True`` clears them.
    * ``--resume auto`` with no checkpoint yet (a run that died before its first save): its
      leftovers are cleared if its config.json matches, else refused as above."""
    from understand_r1_zero.schema import checkpoint_dirs

    root = cfg.save_path
    present = [f for f in RUN_FILES if os.path.exists(os.path.join(root, f))]
    ck_root = os.path.join(root, "checkpoints")
    saved = [os.path.basename(d) for d in checkpoint_dirs(root)]  # full ones and model-only (final) ones
    if resume:
        if cfg.overwrite:
            raise UserError("--overwrite True deletes the run that --resume continues; pass one of them")
        name = os.path.basename(os.path.normpath(resume))
        later = [d for d in saved if d > name] if os.path.dirname(os.path.normpath(resume)) == \
            os.path.normpath(ck_root) else []
        if later:
            raise UserError(f"--resume: {ck_root} has checkpoints after {name} ({', '.join(later)}; a model-only "
                            f"one is a finished run's final save), which the resumed run would mix with; "
                            f"resume the latest, or move them away")
        state = json.load(open(os.path.join(resume, "trainer_state.json")))
        diff = cfg.run_diff(state.get("config") or {})
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if state.get("world_size", world) != world:
            diff.append(f"processes {state['world_size']} -> {world}")
        if diff:
            raise UserError(f"--resume: the checkpoint {resume} belongs to a run with other flags "
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
            raise UserError(f"--save_path {root} holds a finished run ({saved[-1]} holds only the model, no "
                            f"optimizer state to resume from); pick a new --save_path or pass --overwrite True")
        try:
            diff = cfg.run_diff(json.load(open(stored)))
        except ValueError:
            diff = ["config.json unreadable"]
        if not diff:
            return True  # this run's own leftovers from before its first checkpoint
    raise UserError(f"--save_path {root} holds another run ({', '.join(present)}); continue it with "
                    f"--resume auto, pick a new --save_path, or pass --overwrite True to delete it")


def setup(flags: dict):
    """Everything that can fail on bad input, before any model loads."""
    from understand_r1_zero.config import from_flags
    from understand_r1_zero.data import load_eval, load_prompts

    try:
        cfg = from_flags(**flags)
        _check_wandb(cfg, rank0=os.environ.get("RANK", "0") == "0")
        _check_pretrain(cfg.pretrain)
        resume = _find_resume(cfg)
        prompts = load_prompts(cfg.prompt_data, cfg.train_split, cfg.input_key, cfg.output_key,
                               limit=cfg.max_train_samples)
        evals = load_eval(cfg.eval_data, cfg.eval_tasks, cfg.input_key, cfg.output_key,
                          limit=cfg.eval_limit)
        cfg.clear_save_path = _check_save_path(cfg, resume)  # after the inputs: their errors come first
    except (ValueError, FileNotFoundError, KeyError) as e:
        raise UserError(str(e)) from None
    return cfg, resume, prompts, evals


def main(**flags):
    from understand_r1_zero.flags import wants_help

    if wants_help(flags):
        print(main.__doc__)
        return
    if "local_rank" in flags:  # appended by the `deepspeed` launcher; torchrun uses LOCAL_RANK
        os.environ.setdefault("LOCAL_RANK", str(flags.pop("local_rank")))
    t_start = time.time()
    cfg, resume, (questions, answers), eval_tasks = setup(flags)  # fails fast, before heavy imports
    import numpy as np
    import torch
    import torch.distributed as dist
    from tqdm import tqdm

    from understand_r1_zero import losses, schema
    from understand_r1_zero.actor import make_actor
    from understand_r1_zero.data import PromptOrder
    from understand_r1_zero.evaluation import evaluate, summary_to_metrics
    from understand_r1_zero.learner import Learner, all_reduce_sums, init_distributed
    from understand_r1_zero.math_grader import grade_batch
    from understand_r1_zero.templates import get_template

    cpu = not torch.cuda.is_available()
    rank, world, local_rank = init_distributed(cpu)
    try:
        cfg.check_world(world)
    except ValueError as e:
        raise UserError(str(e)) from None
    device = torch.device("cpu") if cpu else torch.device("cuda", local_rank)
    if not cpu:
        torch.cuda.set_device(device)
    torch.manual_seed(cfg.seed), np.random.seed(cfg.seed), random.seed(cfg.seed)
    log = (lambda *a: print(*a, flush=True)) if rank == 0 else (lambda *a: None)
    tpl = get_template(cfg.prompt_template, for_training=True)
    algo = losses.get_algorithm(cfg.algo)
    P_rank = cfg.rollout_batch_size // world  # prompts per rank per step
    G = cfg.num_samples
    dist.barrier()  # every rank has passed setup()'s checks of save_path before rank 0 writes there
    log(json.dumps(cfg.to_dict(), indent=1))
    log(f"[setup] {world} process(es) on {device.type}; {len(questions)} train prompts; "
        f"{cfg.rollout_batch_size} prompts x {G} samples = {cfg.rollout_batch_size * G} responses/step; "
        f"{cfg.updates_per_step} optimizer update(s)/step; eval tasks: {list(eval_tasks) or 'none'}")

    # ---------------------------------------------------------------- models
    base = _resolve_pretrain(cfg, rank)
    actor_path = os.path.join(resume, "model") if resume else base
    try:  # a tokenizer that disagrees with its model: one line, before the models load
        from transformers import AutoTokenizer

        from understand_r1_zero.actor import check_tokenizer

        check_tokenizer(AutoTokenizer.from_pretrained(actor_path), actor_path)
    except ValueError as e:
        raise UserError(str(e)) from None
    learner = Learner(cfg, base, world_size=world, device=device)
    actor = make_actor(cfg.actor, actor_path, seed=cfg.seed + rank,
                       dtype="bfloat16" if cfg.bf16 else "float32",
                       gpu_memory_utilization=cfg.vllm_gpu_ratio,
                       max_model_len=None, enable_sleep_mode=cfg.vllm_sleep,
                       num_threads=cfg.actor_threads or None)
    tok = actor.tokenizer
    fix = "drop those prompts from the data (or use a model with a longer context)"
    try:  # every prompt must leave room for a response; fail now, not mid-run
        actor.check_prompt_lengths([len(actor.encode(tpl(q))) for q in questions],
                                   names=[f"train prompt #{i}" for i in range(len(questions))], fix=fix)
        for task, probs in eval_tasks.items():
            actor.check_prompt_lengths([len(actor.encode(tpl(p["problem"]))) for p in probs],
                                       names=[f"eval {task}#{i}" for i in range(len(probs))], fix=fix)
    except ValueError as e:
        raise UserError(str(e)) from None
    learner.pad_id = actor.pad_id  # an id the model's embedding has, whatever the tokenizer says
    # Only now, with every input checked, does anything touch save_path.
    if rank == 0:
        if cfg.clear_save_path:  # --overwrite, or this run's own leftovers (see _check_save_path)
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
    dist.barrier()
    order = PromptOrder(len(questions), cfg.seed)
    tracker = losses.QuantileTracker([cfg.mvar_alpha, cfg.mvar_beta], cfg.q_lr) if cfg.algo == "mvar" else None
    start_step = 0
    metrics_path = os.path.join(cfg.save_path, "metrics.jsonl")
    if resume:
        state = json.load(open(os.path.join(resume, "trainer_state.json")))
        learner.load(resume)
        start_step, order.position = state["step"], state["data_position"]
        if tracker is not None and state.get("tracker"):
            tracker.load_state_dict(state["tracker"])
        rng = torch.load(os.path.join(resume, f"rng_rank{rank}.pt"), weights_only=False)
        torch.set_rng_state(rng["torch"]), np.random.set_state(rng["numpy"]), random.setstate(rng["python"])
        if rank == 0 and os.path.exists(metrics_path):  # drop rows logged after the checkpoint
            rows = [r for r in schema.read_jsonl(metrics_path) if r["step"] <= start_step]
            tmp = metrics_path + ".tmp"
            with open(tmp, "w") as f:
                f.writelines(schema.dumps(r) + "\n" for r in rows)
            os.replace(tmp, metrics_path)
        if rank == 0:  # ... and rollouts: the resumed steps rewrite them (appending would double them)
            for p in schema.rollout_files(cfg.save_path):
                if schema.rollout_step(p) > start_step:
                    os.remove(p)
        log(f"[resume] from {resume} at step {start_step} (prompt position {order.position})")
    tb = wb = None
    if rank == 0 and cfg.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(os.path.join(cfg.save_path, "tb"))
    if rank == 0 and cfg.use_wb:
        import wandb

        wb = wandb.init(project=cfg.wb_project, name=cfg.wb_run_name or os.path.basename(cfg.save_path.rstrip("/")),
                        config=cfg.to_dict(), resume="allow", dir=cfg.save_path)

    def log_row(row):
        if rank != 0:
            return
        schema.append_jsonl(metrics_path, [row])
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)):
                if tb:
                    tb.add_scalar(k, v, row["step"])
        if wb:
            wb.log(row, step=row["step"])

    def run_eval(step):
        """Greedy (by default) evaluation on every benchmark through the same
        ``evaluation.evaluate`` that evaluate_model.py uses, sharded over the ranks (each
        generates its share; the rows are gathered), so none waits out the collective timeout."""
        if not eval_tasks:
            return {}
        _, summary = evaluate(actor, eval_tasks, template=cfg.prompt_template, n_samples=cfg.eval_n,
                              temperature=cfg.eval_temperature, top_p=1.0,
                              max_tokens=cfg.eval_max_length, seed=cfg.seed,
                              grade_workers=cfg.grade_workers, model_name=f"step {step}",
                              rank=rank, world_size=world)
        out = summary_to_metrics(summary)
        log(f"[eval] step {step}: " + ", ".join(f"{k[5:]}={v:.3f}" for k, v in out.items() if k.endswith("accuracy")))
        return out

    def save_checkpoint(step, model_only=False):
        root = os.path.join(cfg.save_path, "checkpoints")
        final, tmp = os.path.join(root, f"step_{step:05d}"), os.path.join(root, f"step_{step:05d}.tmp")
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
        dist.barrier()
        if not model_only:
            learner.save(tmp, {"step": step})  # optimizer, scheduler, (sharded) module
        sd = learner.full_state_dict(rank)
        torch.save({"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
                   os.path.join(tmp, f"rng_rank{rank}.pt"))
        dist.barrier()  # every rank's files are in tmp before rank 0 renames it
        if rank == 0:
            learner.engine.module.save_pretrained(os.path.join(tmp, "model"), state_dict=sd, safe_serialization=True)
            tok.save_pretrained(os.path.join(tmp, "model"))
            state = {"step": step, "data_position": order.position, "world_size": world, "model_only": model_only,
                     "tracker": tracker.state_dict() if tracker else None, "config": cfg.to_dict()}
            with open(os.path.join(tmp, "trainer_state.json"), "w") as f:
                json.dump(state, f, indent=1)
            if os.path.exists(final):
                shutil.rmtree(final)
            os.replace(tmp, final)  # atomic: a checkpoint dir either is complete or is absent
        dist.barrier()
        log(f"[save] {final}")

    # ---------------------------------------------------------------- step 0 eval
    first_eval = run_eval(start_step) if start_step == 0 else {}
    if first_eval:
        log_row({"step": 0, **first_eval})
    last_eval = first_eval
    bar = tqdm(total=cfg.max_steps, initial=start_step, disable=rank != 0 or not cfg.progress,
               dynamic_ncols=True, desc="RL")
    budget = cfg.num_prompt_epoch * len(questions)  # prompts allowed by --num_prompt_epoch (0 = no limit)
    for step in range(start_step + 1, cfg.max_steps + 1):
        t0 = time.time()
        # The last step: --max_steps reached, or the next step would exceed --num_prompt_epoch.
        final = step == cfg.max_steps or bool(budget and order.position + 2 * cfg.rollout_batch_size > budget)
        # ============================================================ 1. sample prompts
        batch = order.next(cfg.rollout_batch_size)[rank * P_rank : (rank + 1) * P_rank]
        qs = [questions[i] for i in batch]
        refs = [answers[i] for i in batch]
        # ============================================================ 2. generate
        t = time.time()
        groups = actor.generate([tpl(q) for q in qs], n=G, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_tokens=cfg.generate_max_length, stop=list(tpl.stop),
                                include_stop=tpl.include_stop, seed=_seed_for(cfg.seed, step, rank))
        if cfg.vllm_sleep:
            actor.sleep()  # asleep only while the learner updates
        flat = [s for g in groups for s in g]  # [P_rank * G], prompt-major
        t_gen = time.time() - t
        # ============================================================ 3. grade
        t = time.time()
        graded = grade_batch([s.text for s in flat], [r for r in refs for _ in range(G)],
                             template=cfg.prompt_template, timeout_s=cfg.grade_timeout,
                             num_workers=cfg.grade_workers)
        t_grade = time.time() - t
        trunc = torch.tensor([s.truncated for s in flat], dtype=torch.bool)  # [N]
        correct = torch.tensor([r for r, _ in graded], dtype=torch.float32)  # [N]
        rewards = correct.clone()
        if cfg.truncated == "zero_reward":  # Dr. GRPO paper: a truncated response earns nothing
            rewards[trunc] = 0.0
        loss_mask = (~trunc).float() if cfg.truncated == "mask" else torch.ones(len(flat))
        # ============================================================ 4. advantages
        R = rewards.view(P_rank, G)  # [P, G]
        mvar_row = {}
        if cfg.algo == "mvar":
            tracked = tracker.tracked(cfg.mvar_alpha, cfg.mvar_beta)  # None before the first update
            adv = algo.advantages(R, bundle_size=cfg.bundle_size, alpha=cfg.mvar_alpha, beta=cfg.mvar_beta,
                                  w_mix=cfg.w_mix, credit=cfg.credit, q_mode=cfg.q_mode, tracked=tracked)
            scores = torch.cat(losses.mvar_paper_scores(R, cfg.bundle_size))  # this rank's papers
            every = [None] * world
            dist.all_gather_object(every, scores.tolist())  # identical tracker on every rank
            pooled = torch.tensor([x for s in every for x in s])
            tracker.update(pooled)
            # what the tracker did: the quantiles this step's advantages used, the batch's own, and the update
            for i, (name, lv) in enumerate((("alpha", cfg.mvar_alpha), ("beta", cfg.mvar_beta))):
                mvar_row[f"mvar/q_{name}_used"] = tracked[i] if tracked else float("nan")
                mvar_row[f"mvar/q_{name}_batch"] = torch.quantile(pooled.double(), lv).item()
                mvar_row[f"mvar/q_{name}_tracked"] = tracker.value(lv)
            mvar_row["mvar/score_mean"] = pooled.double().mean().item()
        else:
            adv = algo.advantages(R)  # [P, G]
        adv = adv.reshape(-1)  # [N]
        # ============================================================ 5. update
        t = time.time()
        tstats = learner.train(flat, adv, loss_mask, seed=_seed_for(cfg.seed, step, rank))
        t_train = time.time() - t
        # ============================================================ 6. sync weights into the actor
        t = time.time()
        actor.wake(tags=("weights",))  # staged: weights first, the KV cache once they are loaded
        actor.load_weights(learner.named_weights())
        actor.wake()  # awake from here on: evaluation and the next step's generation
        t_sync = time.time() - t
        # ============================================================ 7. log, evaluate, checkpoint
        lens = torch.tensor([len(s.response_ids) for s in flat], dtype=torch.float64)
        fmt = torch.tensor([float(info.get("formatted", False)) for _, info in graded], dtype=torch.float64)
        ok = correct > 0
        S = all_reduce_sums({  # sums over every rank's responses
            "n": len(flat), "reward": rewards.sum(), "formatted": fmt.sum(), "correct": ok.sum(),
            "incorrect": (~ok).sum(), "truncated": trunc.sum(), "len": lens.sum(), "len_correct": (lens * ok).sum(),
            "len_incorrect": (lens * ~ok).sum(), "len_truncated": (lens * trunc).sum()}, device)
        n = S["n"]

        def per(num, den):  # a mean over a subset that may be empty on every rank
            return S[num] / S[den] if S[den] else float("nan")

        row = {
            "step": step,
            "actor/reward_mean": S["reward"] / n,
            "actor/accuracy": S["correct"] / n,
            "actor/formatted_frac": S["formatted"] / n,
            "actor/truncated_frac": S["truncated"] / n,
            "actor/response_len": S["len"] / n,
            "actor/response_len_correct": per("len_correct", "correct"),
            "actor/response_len_incorrect": per("len_incorrect", "incorrect"),
            "actor/response_len_truncated": per("len_truncated", "truncated"),
            **tstats, **mvar_row,
            "time/generate_s": t_gen, "time/grade_s": t_grade, "time/train_s": t_train, "time/sync_s": t_sync,
        }
        if cfg.log_rollouts:
            rows = [{"step": step, "prompt_index": int(batch[i // G]), "sample_index": i % G, "prompt": tpl(qs[i // G]),
                     "response": s.text, "reference": str(refs[i // G]), "answer": info.get("answer"),
                     "reward": float(rewards[i]), "formatted": bool(info.get("formatted")),
                     "length": len(s.response_ids), "finish_reason": s.finish_reason, "truncated": s.truncated}
                    for i, (s, (_, info)) in enumerate(zip(flat, graded))]
            every = [None] * world
            dist.all_gather_object(every, rows)
            if rank == 0:
                schema.append_jsonl(schema.rollout_path(cfg.save_path, step), [r for rs in every for r in rs])
        if final or (cfg.eval_steps and step % cfg.eval_steps == 0):
            last_eval = run_eval(step)
            row.update(last_eval)
        row["time/step_s"] = time.time() - t0
        row["mem/peak_gib"] = all_reduce_sums({"m": peak_memory_gib(device)}, device)["m"] / world  # rank mean
        log_row(row)
        acc = last_eval.get("eval/average/accuracy")
        bar.set_postfix(reward=f"{row['actor/reward_mean']:.2f}", len=f"{row['actor/response_len']:.0f}",
                        **({"eval_acc": f"{acc:.2f}"} if acc is not None else {}))
        bar.update(1)
        if final:
            save_checkpoint(step, model_only=cfg.save_final_only_model)
            if step < cfg.max_steps:
                log(f"[done] --num_prompt_epoch {cfg.num_prompt_epoch} reached at step {step}")
            break
        if cfg.save_steps and step % cfg.save_steps == 0:
            save_checkpoint(step)
    bar.close()

    # ---------------------------------------------------------------- summary
    if rank == 0 and eval_tasks:
        rows = schema.read_jsonl(metrics_path)
        ev = [r for r in rows if "eval/average/accuracy" in r]
        if ev:
            a, b = ev[0], ev[-1]
            lk = [k for k in a if k.endswith("/response_len") and k.startswith("eval/")]
            la = sum(a[k] for k in lk) / max(len(lk), 1)
            lb = sum(b[k] for k in lk) / max(len(lk), 1)
            log("\n" + "=" * 64)
            log(f"summary: eval accuracy {a['eval/average/accuracy']:.3f} (step {a['step']}) -> "
                f"{b['eval/average/accuracy']:.3f} (step {b['step']})")
            log(f"         eval response length {la:.1f} -> {lb:.1f} tokens")
            log(f"         {b['step']} steps, wall time {time.time() - t_start:.0f} s; outputs in {cfg.save_path}")
            log("=" * 64)
    dist.barrier()
    actor.close()  # vLLM's shutdown also tears down the default process group
    if tb:
        tb.close()
    if wb:
        wb.finish()
    if dist.is_initialized():
        dist.destroy_process_group()


def _cli():
    import logging

    import fire

    # The package logs one-time events (e.g. "built the synthetic base model") at INFO.
    pkg = logging.getLogger("understand_r1_zero")
    if not pkg.handlers:
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        pkg.addHandler(h)
        pkg.setLevel(logging.INFO)

    from understand_r1_zero.config import flag_help

    main.__doc__ = (__doc__ or "") + "\nFlags:\n" + flag_help()
    try:
        fire.Fire(main)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    _cli()
