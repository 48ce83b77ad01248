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
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402


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


def setup(flags: dict):
    """Everything that can fail on bad input, before any model loads."""
    from understand_r1_zero import checkpoint, lora
    from understand_r1_zero.config import from_flags
    from understand_r1_zero.data import load_eval, load_prompts
    from understand_r1_zero.rewards import check_references

    try:
        cfg = from_flags(**flags)
        _check_wandb(cfg, rank0=os.environ.get("RANK", "0") == "0")
        _check_pretrain(cfg.pretrain)
        resume = checkpoint.find_resume(cfg)
        lora.check(cfg)  # --lora_* against the model's layers, on a weightless copy
        prompts = load_prompts(cfg.prompt_data, cfg.train_split, cfg.input_key, cfg.output_key,
                               limit=cfg.max_train_samples)
        check_references(cfg.reward, prompts[1], f"--prompt_data {cfg.prompt_data}")
        evals = load_eval(cfg.eval_data, cfg.eval_tasks, cfg.input_key, cfg.output_key,
                          limit=cfg.eval_limit)
        for task, probs in evals.items():
            check_references(cfg.reward, [p["answer"] for p in probs], f"--eval_data {task}")
        cfg.clear_save_path = checkpoint.check_save_path(cfg, resume)  # after the inputs: their errors come first
    except (ValueError, FileNotFoundError, KeyError) as e:
        raise UserError(str(e)) from None
    return cfg, resume, prompts, evals


@dataclass
class Parts:
    """What every RL step works with, built once by ``main``."""
    cfg: object
    actor: object
    learner: object
    algo: object  # losses.Algorithm
    tracker: object  # the algorithm's loop state (Algorithm.tracker), or None
    tpl: object  # templates.Template
    rank: int
    world: int
    device: object


def build_models(cfg, rank, world, device, tpl, questions, eval_tasks):
    """The learner and the actor, both from --pretrain (a resume loads the learner's state later,
    and the actor's weights from it). The tokenizer and every prompt's length are checked here,
    before the run directory is touched."""
    from transformers import AutoTokenizer

    from understand_r1_zero.actor import check_tokenizer, make_actor
    from understand_r1_zero.learner import Learner

    base = actor_path = _resolve_pretrain(cfg, rank)
    try:  # a tokenizer that disagrees with its model: one line, before the models load
        _, _, pad_id = check_tokenizer(AutoTokenizer.from_pretrained(actor_path), actor_path)
    except ValueError as e:
        raise UserError(str(e)) from None
    # pad_id: an id the model's embedding has, whatever the tokenizer says (the actor's too)
    learner = Learner(cfg, base, world_size=world, device=device, pad_id=pad_id)
    actor = make_actor(cfg.actor, actor_path, seed=cfg.seed + rank,
                       dtype="bfloat16" if cfg.bf16 else "float32",
                       gpu_memory_utilization=cfg.vllm_gpu_ratio,
                       max_model_len=None, enable_sleep_mode=cfg.vllm_sleep,
                       num_threads=cfg.actor_threads or None)
    fix = "drop those prompts from the data (or use a model with a longer context)"
    try:  # every prompt must leave room for a response; fail now, not mid-run
        actor.check_prompt_lengths([len(actor.encode(tpl(q))) for q in questions],
                                   names=[f"train prompt #{i}" for i in range(len(questions))], fix=fix)
        for task, probs in eval_tasks.items():
            actor.check_prompt_lengths([len(actor.encode(tpl(p["problem"]))) for p in probs],
                                       names=[f"eval {task}#{i}" for i in range(len(probs))], fix=fix)
    except ValueError as e:
        raise UserError(str(e)) from None
    return learner, actor


def trained_reward(cfg, sample, reward: float) -> float:
    """The reward the advantages see: 0 for a truncated response under --truncated zero_reward
    (the Dr. GRPO paper: a truncated response earns nothing), the grade otherwise."""
    return 0.0 if cfg.truncated == "zero_reward" and sample.truncated else float(reward)


def rollout_metrics(lengths, rewards, correct, truncated, formatted, device) -> dict:
    """``actor/*`` means over every rank's responses, from named sums reduced in one call."""
    import torch

    from understand_r1_zero.learner import all_reduce_sums

    lens = lengths.to(torch.float64)  # [N]
    ok = correct > 0  # [N]
    S = all_reduce_sums({
        "n": len(lens), "reward": rewards.sum(), "formatted": formatted.sum(), "correct": ok.sum(),
        "incorrect": (~ok).sum(), "truncated": truncated.sum(), "len": lens.sum(),
        "len_correct": (lens * ok).sum(), "len_incorrect": (lens * ~ok).sum(),
        "len_truncated": (lens * truncated).sum()}, device)

    def per(num, den):  # a mean over a subset that may be empty on every rank
        return S[num] / S[den] if S[den] else float("nan")

    return {
        "actor/reward_mean": S["reward"] / S["n"],
        "actor/accuracy": S["correct"] / S["n"],
        "actor/formatted_frac": S["formatted"] / S["n"],
        "actor/truncated_frac": S["truncated"] / S["n"],
        "actor/response_len": S["len"] / S["n"],
        "actor/response_len_correct": per("len_correct", "correct"),
        "actor/response_len_incorrect": per("len_incorrect", "incorrect"),
        "actor/response_len_truncated": per("len_truncated", "truncated"),
    }


def advantages(p: Parts, R, lengths):
    """The algorithm's advantages of this rank's rewards R [P, G], as [N]; with a tracker, also
    its update from every rank's scores (identical on every rank) and what it logs."""
    import torch
    import torch.distributed as dist

    opts = p.algo.options(p.cfg)  # the algorithm's own flags, through Algorithm.flags
    if "lengths" in p.algo.inputs:
        opts["lengths"] = lengths.view(R.shape)  # [P, G]
    if p.tracker is None:
        return p.algo.advantages(R, **opts).reshape(-1), {}
    adv = p.algo.advantages(R, **opts, **p.tracker.advantage_kwargs())  # [P, G]
    every = [None] * p.world
    dist.all_gather_object(every, p.tracker.scores(R).tolist())
    return adv.reshape(-1), p.tracker.update(torch.tensor([x for s in every for x in s]))


def sample_and_grade(p: Parts, step: int, batch: list[int], questions, answers, round_: int = 0):
    """Generate G responses for each prompt of ``batch`` and grade them: (flat [P * G] samples,
    prompt-major, their (reward, info), generate seconds, grade seconds). ``round_`` > 0: an
    extra round of dynamic sampling, with its own seed."""
    from understand_r1_zero.rewards import compute_rewards

    cfg, G, tpl = p.cfg, p.cfg.num_samples, p.tpl
    t = time.time()
    groups = p.actor.generate([tpl(questions[i]) for i in batch], n=G, temperature=cfg.temperature,
                              top_p=cfg.top_p, max_tokens=cfg.generate_max_length, stop=list(tpl.stop),
                              include_stop=tpl.include_stop, seed=_seed_for(cfg.seed, step, p.rank) + 7919 * round_)
    flat = [s for g in groups for s in g]  # [P * G], prompt-major
    t_gen = time.time() - t
    t = time.time()
    graded = compute_rewards(cfg.reward, [s.text for s in flat], [answers[i] for i in batch for _ in range(G)],
                             template=cfg.prompt_template, timeout_s=cfg.grade_timeout,
                             num_workers=cfg.grade_workers)
    return flat, graded, t_gen, time.time() - t


def dynamic_sampling(p: Parts, step, order, batch, flat, graded, questions, answers, rounds: int):
    """DAPO's dynamic sampling (arXiv 2503.14476, Sec. 3.2, Eq. 11): drop the groups whose G
    rewards are all equal (as the advantages will see them: a truncated response's 0 under
    --truncated zero_reward, before any reward shaping), which have zero advantage and no
    gradient, and refill the batch with further prompts, at most ``rounds`` extra rounds, and
    none that would pass --num_prompt_epoch's budget. Every rank draws each round's prompts from
    the shared order, so the order (and a resume) stays in step; the rounds stop when every rank
    is full. A rank still short after the last round fills up with dropped groups, so the batch
    keeps its size. Returns (batch, flat, graded, extra generate s, extra grade s, metrics)."""
    from understand_r1_zero.learner import all_reduce_sums

    cfg, G, P, rank = p.cfg, p.cfg.num_samples, len(batch), p.rank
    budget = cfg.num_prompt_epoch * len(questions)  # 0 = no limit

    def groups(b, fl, gr):  # (prompt index, its G samples, their grades), and whether it is informative
        out = [(b[k], fl[k * G:(k + 1) * G], gr[k * G:(k + 1) * G]) for k in range(len(b))]
        return [(g, len({trained_reward(cfg, s, r) for s, (r, _) in zip(g[1], g[2])}) > 1) for g in out]

    kept, spare, extra_gen, extra_grade, done = [], [], 0.0, 0.0, 0
    for g, informative in groups(batch, flat, graded):
        (kept if informative else spare).append(g)
    dropped = len(spare)
    while done < rounds and not (budget and order.position + cfg.rollout_batch_size > budget) and \
            all_reduce_sums({"short": float(len(kept) < P)}, p.device, op="max")["short"]:
        done += 1
        more = order.next(p.cfg.rollout_batch_size)[rank * P:(rank + 1) * P]
        fl, gr, tg, tr = sample_and_grade(p, step, more, questions, answers, round_=done)
        extra_gen, extra_grade = extra_gen + tg, extra_grade + tr
        for g, informative in groups(more, fl, gr):
            (kept if informative else spare).append(g)
            dropped += not informative
    use = (kept + spare)[:P]  # short after the last round: dropped groups fill up
    S = all_reduce_sums({"dropped": dropped, "filled": max(0, P - len(kept))}, p.device)
    row = {"actor/dynamic_dropped": S["dropped"], "actor/dynamic_filled": S["filled"], "actor/dynamic_rounds": done}
    return ([g[0] for g in use], [s for g in use for s in g[1]], [x for g in use for x in g[2]],
            extra_gen, extra_grade, row)


def rl_step(p: Parts, step: int, batch: list[int], questions, answers, order=None) -> dict:
    """One R1-Zero iteration on this rank's prompts ``batch`` (steps 2-6); returns its metrics.
    ``order`` (the prompt order) is drawn from for dynamic sampling."""
    import torch
    import torch.distributed as dist

    from understand_r1_zero import schema

    cfg, G, tpl = p.cfg, p.cfg.num_samples, p.tpl
    # ============================================================ 2. generate, 3. grade
    flat, graded, t_gen, t_grade = sample_and_grade(p, step, batch, questions, answers)
    dyn_row, rounds = {}, p.algo.options(cfg).get("dynamic_rounds", 0)
    if rounds:  # DAPO: refill the batch with groups whose rewards differ
        batch, flat, graded, tg, tr, dyn_row = dynamic_sampling(p, step, order, batch, flat, graded, questions,
                                                                answers, rounds)
        t_gen, t_grade = t_gen + tg, t_grade + tr
    if cfg.vllm_sleep:
        p.actor.sleep()  # asleep only while the learner updates
    qs, refs = [questions[i] for i in batch], [answers[i] for i in batch]
    trunc = torch.tensor([s.truncated for s in flat], dtype=torch.bool)  # [N]
    correct = torch.tensor([r for r, _ in graded], dtype=torch.float32)  # [N]; correct: reward > 0 (rewards.py)
    rewards = torch.tensor([trained_reward(cfg, s, r) for s, (r, _) in zip(flat, graded)], dtype=torch.float32)
    formatted = torch.tensor([float(info.get("formatted", False)) for _, info in graded], dtype=torch.float64)
    loss_mask = (~trunc).float() if cfg.truncated == "mask" else torch.ones(len(flat))  # [N]
    lengths = torch.tensor([len(s.response_ids) for s in flat])  # [N]
    if p.algo.shape_rewards is not None:  # e.g. DAPO's overlong punishment
        rewards = p.algo.shape_rewards(rewards, lengths, max_len=cfg.generate_max_length, **p.algo.options(cfg))
    # ============================================================ 4. advantages
    adv, tracker_row = advantages(p, rewards.view(len(batch), G), lengths)  # [N]
    # ============================================================ 5. update
    t = time.time()
    tstats = p.learner.train(flat, adv, loss_mask, seed=_seed_for(cfg.seed, step, p.rank))
    t_train = time.time() - t
    # ============================================================ 6. sync weights into the actor
    t = time.time()
    p.actor.wake(tags=("weights",))  # staged: weights first, the KV cache once they are loaded
    p.actor.load_weights(p.learner.named_weights())
    p.actor.wake()  # awake from here on: evaluation and the next step's generation
    t_sync = time.time() - t
    if cfg.log_rollouts:
        rows = [{"step": step, "prompt_index": int(batch[i // G]), "sample_index": i % G, "prompt": tpl(qs[i // G]),
                 "response": s.text, "reference": str(refs[i // G]), "answer": info.get("answer"),
                 "reward": float(rewards[i]), "formatted": bool(info.get("formatted")),
                 "length": len(s.response_ids), "finish_reason": s.finish_reason, "truncated": s.truncated}
                for i, (s, (_, info)) in enumerate(zip(flat, graded))]
        every = [None] * p.world
        dist.all_gather_object(every, rows)
        if p.rank == 0:
            schema.append_jsonl(schema.rollout_path(cfg.save_path, step), [r for rs in every for r in rs])
    return {"step": step, **rollout_metrics(lengths, rewards, correct, trunc, formatted, p.device), **tstats,
            **tracker_row, **dyn_row, "time/generate_s": t_gen, "time/grade_s": t_grade, "time/train_s": t_train,
            "time/sync_s": t_sync}


def run_eval(p: Parts, eval_tasks, step: int, log) -> dict:
    """Greedy (by default) evaluation on every benchmark through the same
    ``evaluation.evaluate`` that evaluate_model.py uses, sharded over the ranks (each generates
    its share; the rows are gathered), so none waits out the collective timeout."""
    from understand_r1_zero.evaluation import evaluate, summary_to_metrics

    if not eval_tasks:
        return {}
    cfg = p.cfg
    _, summary = evaluate(p.actor, eval_tasks, template=cfg.prompt_template, n_samples=cfg.eval_n,
                          temperature=cfg.eval_temperature, top_p=1.0, max_tokens=cfg.eval_max_length,
                          seed=cfg.seed, grade_workers=cfg.grade_workers, reward=cfg.reward,
                          model_name=f"step {step}", rank=p.rank, world_size=p.world)
    # (the grading timeout is evaluate()'s default, as in evaluate_model.py, so a checkpoint scores
    # the same in both; --grade_timeout is the rollouts')
    out = summary_to_metrics(summary)
    log(f"[eval] step {step}: " + ", ".join(f"{k[5:]}={v:.3f}" for k, v in out.items() if k.endswith("accuracy")))
    return out


class MetricsLog:
    """Rank 0 appends each step's row to metrics.jsonl, and to TensorBoard and wandb if asked."""

    def __init__(self, cfg, rank: int):
        self.save_path, self.rank, self.tb, self.wb = cfg.save_path, rank, None, None
        self.path = os.path.join(cfg.save_path, "metrics.jsonl")
        if rank == 0 and cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(os.path.join(cfg.save_path, "tb"))
        if rank == 0 and cfg.use_wb:
            import wandb

            self.wb = wandb.init(project=cfg.wb_project, config=cfg.to_dict(), resume="allow", dir=cfg.save_path,
                                 name=cfg.wb_run_name or os.path.basename(cfg.save_path.rstrip("/")))

    def __call__(self, row: dict) -> None:
        from understand_r1_zero import schema

        if self.rank != 0:
            return
        schema.append_jsonl(self.path, [row])
        if self.tb:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, row["step"])
        if self.wb:
            self.wb.log(row, step=row["step"])

    def summary(self, t_start: float, log) -> None:
        """First and last evaluation of the run, on rank 0."""
        from understand_r1_zero import schema

        ev = [r for r in schema.read_jsonl(self.path) if "eval/average/accuracy" in r] if self.rank == 0 else []
        if not ev:
            return
        a, b = ev[0], ev[-1]
        lk = [k for k in a if k.endswith("/response_len") and k.startswith("eval/")]
        la = sum(a[k] for k in lk) / max(len(lk), 1)
        lb = sum(b[k] for k in lk) / max(len(lk), 1)
        log("\n" + "=" * 64)
        log(f"summary: eval accuracy {a['eval/average/accuracy']:.3f} (step {a['step']}) -> "
            f"{b['eval/average/accuracy']:.3f} (step {b['step']})")
        log(f"         eval response length {la:.1f} -> {lb:.1f} tokens")
        log(f"         {b['step']} steps, wall time {time.time() - t_start:.0f} s; outputs in {self.save_path}")
        log("=" * 64)

    def close(self) -> None:
        if self.tb:
            self.tb.close()
        if self.wb:
            self.wb.finish()


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

    from understand_r1_zero import checkpoint, losses
    from understand_r1_zero.data import PromptOrder
    from understand_r1_zero.learner import all_reduce_sums, init_distributed
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
    dist.barrier()  # every rank has passed setup()'s checks of save_path before rank 0 writes there
    log(json.dumps(cfg.to_dict(), indent=1))
    log(f"[setup] {world} process(es) on {device.type}; {len(questions)} train prompts; "
        f"{cfg.rollout_batch_size} prompts x {cfg.num_samples} samples = {cfg.rollout_batch_size * cfg.num_samples} "
        f"responses/step; {cfg.updates_per_step} optimizer update(s)/step; eval tasks: {list(eval_tasks) or 'none'}")

    # ---------------------------------------------------------------- models, run directory, resume
    learner, actor = build_models(cfg, rank, world, device, tpl, questions, eval_tasks)
    trainable, total = learner.sizes
    log(f"[setup] learner: {total / 1e6:.2f}M parameters, {trainable / 1e6:.2f}M trainable ({100 * trainable / total:.2f}%)"
        + (f": LoRA rank {cfg.lora_rank}, alpha {cfg.lora_alpha:g} on {cfg.lora_target_modules}" if cfg.lora_rank else ""))
    if rank == 0:  # only now, with every input checked, does anything touch save_path
        checkpoint.prepare_run_dir(cfg, log)
    dist.barrier()
    order = PromptOrder(len(questions), cfg.seed)
    tracker = algo.tracker(**algo.options(cfg)) if algo.tracker else None
    p = Parts(cfg, actor, learner, algo, tracker, tpl, rank, world, device)
    start_step = 0
    if resume:
        start_step = checkpoint.restore(resume, cfg, learner=learner, order=order, tracker=tracker, rank=rank)
        actor.load_weights(learner.named_weights())  # the actor started from --pretrain
        log(f"[resume] from {resume} at step {start_step} (prompt position {order.position})")
    log_row = MetricsLog(cfg, rank)

    def save(step, model_only=False, last=False):
        log("[save] " + checkpoint.save(cfg, step, learner=learner, tokenizer=actor.tokenizer, position=order.position,
                                        tracker=tracker, rank=rank, world=world, model_only=model_only, last=last))

    # ---------------------------------------------------------------- step 0 eval
    last_eval = run_eval(p, eval_tasks, start_step, log) if start_step == 0 else {}
    if last_eval:
        log_row({"step": 0, **last_eval})
    bar = tqdm(total=cfg.max_steps, initial=start_step, disable=rank != 0 or not cfg.progress,
               dynamic_ncols=True, desc="RL")
    budget = cfg.num_prompt_epoch * len(questions)  # prompts allowed by --num_prompt_epoch (0 = no limit)
    P_rank = cfg.rollout_batch_size // world  # prompts per rank per step
    for step in range(start_step + 1, cfg.max_steps + 1):
        t0 = time.time()
        # The last step: --max_steps reached, or the next step would exceed --num_prompt_epoch.
        final = step == cfg.max_steps or bool(budget and order.position + 2 * cfg.rollout_batch_size > budget)
        # ============================================================ 1. sample prompts
        batch = order.next(cfg.rollout_batch_size)[rank * P_rank : (rank + 1) * P_rank]
        # ============================================================ 2-6. generate .. sync
        row = rl_step(p, step, batch, questions, answers, order)
        # ============================================================ 7. evaluate, log, checkpoint
        if final or (cfg.eval_steps and step % cfg.eval_steps == 0):
            last_eval = run_eval(p, eval_tasks, step, log)
            row.update(last_eval)
        row["time/step_s"] = time.time() - t0
        row["mem/peak_gib"] = all_reduce_sums({"m": peak_memory_gib(device)}, device)["m"] / world  # rank mean
        log_row(row)
        acc = last_eval.get("eval/average/accuracy")
        bar.set_postfix(reward=f"{row['actor/reward_mean']:.2f}", len=f"{row['actor/response_len']:.0f}",
                        **({"eval_acc": f"{acc:.2f}"} if acc is not None else {}))
        bar.update(1)
        if final:
            save(step, model_only=cfg.save_final_only_model, last=True)
            if step < cfg.max_steps:
                log(f"[done] --num_prompt_epoch {cfg.num_prompt_epoch} reached at step {step}")
            break
        if cfg.save_steps and step % cfg.save_steps == 0:
            save(step)
    bar.close()

    # ---------------------------------------------------------------- summary, teardown
    if eval_tasks:
        log_row.summary(t_start, log)
    dist.barrier()
    actor.close()  # vLLM's shutdown also tears down the default process group
    log_row.close()
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

    from understand_r1_zero.config import flag_help, registry_help

    main.__doc__ = (__doc__ or "") + "\nFlags:\n" + flag_help() + "\n\n" + registry_help()
    try:
        fire.Fire(main)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    _cli()
