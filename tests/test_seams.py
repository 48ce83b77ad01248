"""The seams a researcher reaches for: a toy algorithm registered from outside the package runs a
training step; the reward seam scores a scripted Countdown step exactly (rl_step with a fake
actor and learner); Countdown trains end to end from the command line."""

import json
import os
import re
import subprocess
import sys
from fractions import Fraction

import pytest
import torch

from understand_r1_zero import schema
from understand_r1_zero.learner import free_port
from understand_r1_zero.rollout import Sample

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
ENV = {**os.environ, "DS_ACCELERATOR": "cpu", "PYTHONPATH": ROOT}


def _run(script, flags, timeout=600):
    args = [x for k, v in flags.items() for x in (f"--{k}", str(v))]
    r = subprocess.run([sys.executable, script] + args, capture_output=True, text=True, env=ENV,
                       timeout=timeout, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def test_toy_algorithm_through_the_public_registry(tiny_model_dir, tmp_path):
    """All advantages +1 with token_mean at ratio 1 (one update: old = current) make the surrogate
    exactly -1, and the toy loss doubles it: train/loss = -2 proves both the advantage function
    and the loss function came from the registry entry (Dr. GRPO's would be about 0)."""
    out = _run(os.path.join(HERE, "toy_algorithm.py"), dict(
        algo="toy_positive", pretrain=tiny_model_dir, eval_data="", rollout_batch_size=2, num_samples=2,
        micro_batch_size=2, generate_max_length=8, max_steps=1, save_path=tmp_path / "run", progress=False,
        grade_workers=0))
    rows = schema.read_metrics(str(tmp_path / "run"))
    assert [r["step"] for r in rows] == [1]
    assert rows[0]["train/loss"] == pytest.approx(-2.0, abs=1e-5), out[-2000:]
    assert json.load(open(tmp_path / "run" / "config.json"))["algo"] == "toy_positive"
    help_text = subprocess.run([sys.executable, os.path.join(HERE, "toy_algorithm.py"), "--help"],
                               capture_output=True, text=True, env=ENV, timeout=120).stdout
    assert re.search(r"toy_positive +a test: advantage \+1", help_text)  # --help lists the registry


# ---------------------------------------------------------------- a scripted Countdown step

PROBLEMS = [([3, 5, 7], 22), ([4, 6, 8, 2], 10)]
RESPONSES = [  # per problem: G = 4 responses, and what the reward must say about each
    [("</think> <answer> 3 * 5 + 7 </answer>", 1.0, True),
     ("</think> <answer> 7 + 3 * 5 = 22 </answer>", 1.0, True),
     ("</think> <answer> 3 * 5 </answer>", 0.0, True),  # misses a number
     ("I think it is 22", 0.0, False)],  # no answer tag
    [("</think> <answer> (8 - 6) * 4 + 2 </answer>", 1.0, True),
     ("</think> <answer> 8 / (6 - 6) + 4 + 2 </answer>", 0.0, True),  # 6 twice, and a division by zero
     ("</think> <answer> __import__('os').system('echo hi') </answer>", 0.0, True),  # never evaluated
     ("</think> <answer> 8 + 6 - 4 </answer>", 0.0, True)],  # 10 but without the 2
]


def _independent_score(answer, numbers, target):
    """The test's own Countdown check of an extracted answer: a whitelisted ASCII expression (no
    unary signs), an optional claimed '= N', then Python on Fractions. None: not judged here
    (e.g. the LaTeX or Unicode operators the reward also accepts)."""
    if answer is None:
        return 0.0
    expr, eq, claim = answer.partition("=")
    if eq and (not re.fullmatch(r"\s*[0-9]+\s*", claim) or int(claim) != target):
        return 0.0 if re.fullmatch(r"\s*[0-9]+\s*", claim) else None
    if not re.fullmatch(r"[0-9+\-*/() ]+", expr) or re.search(r"(^|[(+\-*/])\s*[+\-]", expr.strip()):
        return None
    if sorted(map(int, re.findall(r"[0-9]+", expr))) != sorted(numbers):
        return 0.0
    try:
        value = eval(re.sub(r"([0-9]+)", r"Fraction(\1)", expr), {"Fraction": Fraction})  # noqa: S307 - whitelisted
    except Exception:  # noqa: BLE001 - ZeroDivisionError, SyntaxError, '2(3)'
        return 0.0
    return float(value == target)


def _answer_of(text):
    m = re.search(r"</think>.*<answer>(.*?)</answer>", text, re.S)
    return m.group(1).strip() if m else None


class ScriptedActor:
    def __init__(self):
        self.asleep_parts = frozenset()

    def generate(self, prompts, *, n, **kw):
        assert len(prompts) == len(RESPONSES) and n == 4
        return [[Sample([1, 2], [5] * (3 + k), text, [-1.0] * (3 + k), "stop") for k, (text, _, _) in
                 enumerate(group)] for group in RESPONSES]

    def sleep(self):
        pass

    def wake(self, tags=()):
        pass

    def load_weights(self, named):
        return sum(1 for _ in named)


class RecordingLearner:
    def train(self, samples, advantages, loss_mask, *, seed):
        self.advantages = advantages.clone()
        return {"train/loss": 0.0}

    def named_weights(self):
        return iter([])


@pytest.fixture()
def one_process_group():
    """A one-process group for rl_step's collectives; the session's own (the in-process vLLM
    engine starts one) when it already exists."""
    import torch.distributed as dist

    if dist.is_initialized():
        assert dist.get_world_size() == 1
        yield
        return
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_countdown_step_scores_exactly(tmp_path, one_process_group):
    sys.path.insert(0, ROOT)
    import train_zero_math as tzm

    from understand_r1_zero import countdown, losses
    from understand_r1_zero.config import from_flags
    from understand_r1_zero.templates import get_template

    cfg = from_flags(reward="countdown", prompt_data="countdown", eval_data="countdown",
                     prompt_template="countdown", num_samples=4, rollout_batch_size=2, save_path=str(tmp_path),
                     grade_workers=1)
    questions = [countdown.QUESTION.format(numbers=n, target=t) for n, t in PROBLEMS]
    answers = [countdown.make_reference(n, t) for n, t in PROBLEMS]
    learner = RecordingLearner()
    p = tzm.Parts(cfg, ScriptedActor(), learner, losses.get_algorithm("drgrpo"), None,
                  get_template("countdown", for_training=True), 0, 1, torch.device("cpu"))
    row = tzm.rl_step(p, 1, [0, 1], questions, answers)

    want = [[r for _, r, _ in g] for g in RESPONSES]
    for g, (numbers, target) in zip(RESPONSES, PROBLEMS):  # the script itself is right
        # (None, not judged by the whitelist, is the hostile answer: 0)
        assert [_independent_score(_answer_of(t), numbers, target) or 0.0 for t, _, _ in g] == [r for _, r, _ in g]
    assert row["actor/reward_mean"] == pytest.approx(3 / 8)
    assert row["actor/accuracy"] == pytest.approx(3 / 8)
    assert row["actor/formatted_frac"] == pytest.approx(7 / 8)
    # Dr. GRPO advantages of the rewards: r - mean(r) per prompt
    R = torch.tensor(want)
    torch.testing.assert_close(learner.advantages, (R - R.mean(1, keepdim=True)).reshape(-1))
    rows = schema.read_rollouts(str(tmp_path))
    assert [r["reward"] for r in rows] == [r for g in want for r in g]
    assert [r["formatted"] for r in rows] == [f for g in RESPONSES for _, _, f in g]
    assert rows[0]["answer"] == "3 * 5 + 7" and rows[3]["answer"] is None


def test_countdown_trains_end_to_end(demo_base_model, tmp_path):
    """``--reward countdown --prompt_data countdown`` runs on CPU: training steps, evaluation and a
    checkpoint. The tiny arithmetic model earns (almost) nothing, so this checks the plumbing and
    that every logged reward the test can judge on its own is right; the scripted step above is
    what checks positive rewards."""
    out = _run(os.path.join(ROOT, "train_zero_math.py"), dict(
        reward="countdown", prompt_data="countdown", eval_data="countdown", prompt_template="countdown",
        pretrain=demo_base_model, eval_limit=8, rollout_batch_size=4, num_samples=4, micro_batch_size=8,
        generate_max_length=48, eval_max_length=48, max_steps=2, save_path=tmp_path / "run",
        progress=False, grade_workers=1))
    rows = schema.read_metrics(str(tmp_path / "run"))
    assert [r["step"] for r in rows] == [0, 1, 2] and "eval/countdown/accuracy" in rows[-1]
    rollouts = schema.read_rollouts(str(tmp_path / "run"))
    assert len(rollouts) == 2 * 4 * 4
    assert {r["reference"] for r in rollouts} <= {row["answer"] for row in _countdown_train()}
    for r in rollouts:
        ref = json.loads(r["reference"])
        want = 0.0 if r["truncated"] else _independent_score(r["answer"], ref["numbers"], ref["target"])
        assert want is None or r["reward"] == want, r
        assert r["formatted"] == (r["answer"] is not None), r
    for row in rows[1:]:
        assert row["actor/reward_mean"] == pytest.approx(
            sum(r["reward"] for r in rollouts if r["step"] == row["step"]) / 16)
    assert os.path.isdir(tmp_path / "run" / "checkpoints" / "step_00002" / "model")
    assert "summary: eval accuracy" in out


def _countdown_train():
    from understand_r1_zero import countdown

    return countdown.make_task()[0]


def test_generated_data_needs_its_reward():
    from understand_r1_zero.config import from_flags

    with pytest.raises(ValueError, match="--prompt_data countdown is scored by --reward countdown"):
        from_flags(prompt_data="countdown", eval_data="")
    with pytest.raises(ValueError, match="--eval_data synthetic is scored by --reward math"):
        from_flags(reward="countdown", prompt_data="countdown")
    with pytest.raises(ValueError, match="unknown --reward 'nope'; valid: math, countdown"):
        from_flags(reward="nope")


def test_readme_loss_example_runs():
    """The README's worked example (a new loss plus its registry line) is real code: executed where
    it says it goes (the end of losses.py), it registers and computes the hand-checked value."""
    from understand_r1_zero import losses

    text = open(os.path.join(ROOT, "README.md")).read()
    code = re.search(r"```python\n(def seq_ratio_loss.*?)```", text, re.S).group(1)
    ns = dict(vars(losses))
    ns["ALGORITHMS"] = dict(losses.ALGORITHMS)  # register into a copy
    ns["register_algorithm"] = lambda a: ns["ALGORITHMS"].setdefault(a.name, a)
    exec(code, ns)  # noqa: S102 - our own README
    algo = ns["ALGORITHMS"]["seqratio"]
    lp = torch.tensor([[0.0, -1.0, 5.0], [-0.5, -0.5, -0.5]])
    old = torch.tensor([[-0.2, -1.2, 0.0], [-0.5, -0.5, -0.5]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])  # a padded position holding garbage
    adv = torch.tensor([1.0, -1.0])
    loss, stats = algo.loss_fn(lp, old, adv, mask, clip_low=0.2, clip_high=0.1, num_seqs=4, return_stats=True)
    # response 0: ratio e^0.2 = 1.2214, clipped to 1.1 for A > 0: -1.1; response 1: ratio 1: +1
    assert loss.item() == pytest.approx((-1.1 + 1.0) / 4)
    assert stats["clip_frac"].item() == pytest.approx(0.5)


# ---------------------------------------------------------------- the reward registry

@pytest.fixture()
def toy_rewards():
    sys.path.insert(0, HERE)
    import toy_rewards as tr

    from understand_r1_zero import rewards

    added = [rewards.register_reward(rewards.Reward(f"toy_{n}", getattr(tr, f"{n}_reward")))
             for n in ("length", "set", "slow")]
    yield rewards
    for r in added:
        del rewards.REWARDS[r.name]


@pytest.mark.parametrize("workers", [0, 1])
def test_a_registered_reward_runs_in_the_pool_and_in_process(toy_rewards, workers):
    out = toy_rewards.compute_rewards("toy_length", ["abcd", "xy"], [None, None], "no", num_workers=workers)
    assert out == [(0.4, {"formatted": True, "answer": "abc", "timeout": False}),
                   (0.2, {"formatted": True, "answer": "xy", "timeout": False})]
    with pytest.raises(RuntimeError, match=r"raised on response #0 \(TypeError.*set"):
        toy_rewards.compute_rewards("toy_set", ["a"], [None], "no", num_workers=workers)


def test_a_hanging_reward_is_killed_and_scores_zero(toy_rewards):
    out = toy_rewards.compute_rewards("toy_slow", ["fast", "slow", "fast"], [None] * 3, "no", timeout_s=2.0,
                                      num_workers=1)
    assert [r for r, _ in out] == [1.0, 0.0, 1.0] and [i["timeout"] for _, i in out] == [False, True, False]


def test_reward_registry_refuses_what_workers_cannot_import():
    from understand_r1_zero import rewards

    with pytest.raises(ValueError, match="cannot be imported by the grading workers"):
        rewards.register_reward(rewards.Reward("toy_lambda", lambda r, ref, t: (1.0, {})))
    with pytest.raises(ValueError, match="already registered"):
        rewards.register_reward(rewards.Reward("math", rewards.math_grader.reward_fn))
    assert "toy_lambda" not in rewards.REWARDS


# ---------------------------------------------------------------- DAPO's dynamic sampling

class PerPromptActor(ScriptedActor):
    """Prompt "Q<k>": all correct for k = 0, all wrong for k = 3, mixed otherwise."""

    def generate(self, prompts, *, n, seed=None, **kw):
        self.calls = getattr(self, "calls", 0) + 1
        out = []
        for prompt in prompts:
            k = int(re.search(r"Q(\d)", prompt).group(1))
            right = [True] * n if k == 0 else [False] * n if k == 3 else [j % 2 == 0 for j in range(n)]
            out.append([Sample([1], [5, 6], f"\\boxed{{{k if ok else 9}}}", [-1.0, -1.0], "stop") for ok in right])
        return out


class Sequential:
    def __init__(self):
        self.position = 0

    def next(self, k):
        self.position += k
        return list(range(self.position - k, self.position))


def test_dynamic_sampling_refills_with_informative_groups(tmp_path, one_process_group):
    sys.path.insert(0, ROOT)
    import train_zero_math as tzm

    from understand_r1_zero import losses
    from understand_r1_zero.config import from_flags
    from understand_r1_zero.templates import get_template

    cfg = from_flags(algo="dapo", num_samples=4, rollout_batch_size=2, save_path=str(tmp_path), grade_workers=0,
                     prompt_data="unused", eval_data="")
    assert losses.get_algorithm("dapo").options(cfg)["dynamic_rounds"] == 3  # dapo's default
    questions, answers = [f"Q{k}" for k in range(6)], [str(k) for k in range(6)]
    actor, learner, order = PerPromptActor(), RecordingLearner(), Sequential()
    p = tzm.Parts(cfg, actor, learner, losses.get_algorithm("dapo"), None, get_template("qwen_math", for_training=True),
                  0, 1, torch.device("cpu"))
    batch = order.next(2)  # prompts 0 (all correct: dropped) and 1 (mixed)
    row = tzm.rl_step(p, 1, batch, questions, answers, order)
    # one extra round drew prompts 2 (mixed: kept) and 3 (all wrong: dropped); then the batch was full
    assert (row["actor/dynamic_rounds"], row["actor/dynamic_dropped"], actor.calls, order.position) == (1, 2, 2, 4)
    rows = schema.read_rollouts(str(tmp_path))
    assert [r["prompt_index"] for r in rows] == [1] * 4 + [2] * 4
    assert learner.advantages.abs().sum() > 0 and row["actor/accuracy"] == pytest.approx(0.5)
    # off (0 rounds): the batch is kept as drawn
    cfg0 = from_flags(algo="dapo", num_samples=4, rollout_batch_size=2, save_path=str(tmp_path / "b"), grade_workers=0,
                      prompt_data="unused", eval_data="", dynamic_sampling_rounds=0)
    p0 = tzm.Parts(cfg0, PerPromptActor(), RecordingLearner(), p.algo, None, p.tpl, 0, 1, torch.device("cpu"))
    row0 = tzm.rl_step(p0, 1, [0, 1], questions, answers, Sequential())
    assert "actor/dynamic_rounds" not in row0 and row0["actor/accuracy"] == pytest.approx(0.75)


def test_dynamic_sampling_stops_after_its_rounds_and_fills(tmp_path, one_process_group):
    """Every extra prompt is uninformative (all wrong): the 3 rounds run out, the rank fills its
    batch with dropped groups, and the batch keeps its size."""
    sys.path.insert(0, ROOT)
    import train_zero_math as tzm

    from understand_r1_zero import losses
    from understand_r1_zero.config import from_flags
    from understand_r1_zero.templates import get_template

    cfg = from_flags(algo="dapo", num_samples=4, rollout_batch_size=2, save_path=str(tmp_path), grade_workers=0,
                     prompt_data="unused", eval_data="")
    questions, answers = ["Q1", "Q0"] + ["Q3"] * 8, ["1", "0"] + ["3"] * 8
    actor, order = PerPromptActor(), Sequential()
    p = tzm.Parts(cfg, actor, RecordingLearner(), losses.get_algorithm("dapo"), None,
                  get_template("qwen_math", for_training=True), 0, 1, torch.device("cpu"))
    row = tzm.rl_step(p, 1, order.next(2), questions, answers, order)
    assert (row["actor/dynamic_rounds"], row["actor/dynamic_dropped"], row["actor/dynamic_filled"]) == (3, 7, 1)
    assert order.position == 8 and actor.calls == 4
    rows = schema.read_rollouts(str(tmp_path))
    assert [r["prompt_index"] for r in rows] == [0] * 4 + [1] * 4  # the informative one, then the first dropped
