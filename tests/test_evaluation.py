"""Evaluation: metrics by hand, the pipeline through the real grader, resume, the tiny model on
real benchmark slices (hf and vllm), bad input, the CLI, and the data converters."""

import json
import logging
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from understand_r1_zero import schema
from understand_r1_zero.evaluation import (bootstrap_ci, evaluate, format_table, load_eval_tasks,
                                           majority_vote, normalize_answer, pass_at_k,
                                           summarize_task, summary_to_metrics)
from understand_r1_zero.rollout import Sample
from understand_r1_zero.templates import few_shot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import build_eval_data as bed  # noqa: E402

SYNTH = {"synth": [{"problem": f"What is {a} + {b}?", "answer": str(a + b)}
                   for a, b in [(1, 2), (12, 30), (7, 8), (40, 2), (99, 1), (5, 5)]]}


# ----------------------------------------------------------------------------- metrics by hand
def test_pass_at_k_hand_cases():
    assert pass_at_k(4, 2, 1) == pytest.approx(0.5)
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)  # 1 - C(2,2)/C(4,2) = 5/6
    assert pass_at_k(4, 2, 3) == 1.0 and pass_at_k(4, 2, 4) == 1.0
    assert pass_at_k(5, 0, 3) == 0.0 and pass_at_k(5, 5, 1) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    for n in (1, 7, 64):  # the product form equals the binomial form, and stays finite at large n
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-9)
    assert 0 <= pass_at_k(1024, 3, 10) <= 1
    with pytest.raises(ValueError):
        pass_at_k(4, 2, 5)


def test_majority_vote_and_normalisation():
    assert majority_vote(["4", "5", "4.0", None], [1, 0, 1, 0]) == 1.0  # "4" and "4.0" vote together
    assert majority_vote(["5", "4", "5"], [0, 1, 0]) == 0.0  # the majority is wrong
    assert majority_vote(["3", "4"], [0, 1]) == 0.0 and majority_vote(["4", "3"], [1, 0]) == 1.0  # tie: first seen
    assert majority_vote([None, None], [0, 0]) == 0.0
    # by the grader's exact equivalence: 1/2, \frac{1}{2} and 0.5 are one answer (3 votes beat 2)
    assert majority_vote(["3", "1/2", "\\frac{1}{2}", "3", "0.5"], [0, 1, 1, 0, 1]) == 1.0
    assert majority_vote(["0.4999", "3", "1/2", "3"], [0, 0, 1, 0]) == 0.0  # 0.4999 is not 1/2: "3" wins 2-1
    assert majority_vote(["3", "\\frac{6}{2}", "2", "2"], [1, 1, 0, 0]) == 1.0  # 2-2 tie: the class seen first
    assert majority_vote(["2", "2", "3", "\\frac{6}{2}"], [0, 0, 1, 1]) == 0.0  # ... whichever it is
    assert majority_vote(["x=5", "5", "6", "6"], [1, 1, 0, 0]) == 1.0  # "x = 5" is the answer 5
    assert normalize_answer("\\dfrac{1}{2}") == normalize_answer("\\frac{1}{2}")
    assert normalize_answer("$1,000$") == "1000" and normalize_answer("(1,2)") == "(1,2)"
    assert normalize_answer("\\left( 3, \\frac{\\pi}{2} \\right)") == "(3,\\frac{\\pi}{2})"
    assert normalize_answer("0.50") == "0.5" and normalize_answer("30^\\circ") == "30"
    assert normalize_answer("\\text{East}") == "east" and normalize_answer("") is None


def test_bootstrap_ci_brackets_and_is_seeded():
    v = np.random.default_rng(1).integers(0, 2, 200).astype(float)
    lo, hi = bootstrap_ci(v)
    assert lo < v.mean() < hi and hi - lo < 0.2
    assert bootstrap_ci(v) == [lo, hi]  # seeded: the same interval every time
    u = np.random.default_rng(2).random(50)  # continuous values: another seed moves the interval
    assert bootstrap_ci(u, seed=0) != bootstrap_ci(u, seed=1)
    assert bootstrap_ci(np.ones(30)) == [1.0, 1.0]


def _row(task, i, rewards, answers=None, lengths=None):
    answers = answers or ["1"] * len(rewards)
    lengths = lengths or [10] * len(rewards)
    return {"task": task, "index": i, "samples": [
        {"response": "", "answer": a, "reward": float(r), "formatted": a is not None, "length": L,
         "finish_reason": "length" if L >= 100 else "stop"} for r, a, L in zip(rewards, answers, lengths)]}


def test_summarize_task_numbers():
    rows = [_row("t", 0, [1, 1, 0, 0], ["2", "2", "3", "3"], [10, 20, 30, 100]),
            _row("t", 1, [0, 0, 0, 0], [None, "7", "7", "8"])]
    s = summarize_task(rows)
    assert set(schema.SUMMARY_TASK_FIELDS) <= set(s)
    assert s["n_problems"] == 2 and s["n_samples"] == 4
    assert s["accuracy"] == pytest.approx(0.25)
    assert s["pass@k"]["1"] == pytest.approx(0.25) and s["pass@k"]["2"] == pytest.approx(5 / 12)
    assert s["pass@k"]["4"] == pytest.approx(0.5)
    assert s["maj@n"] == pytest.approx(0.5)  # problem 0: tie 2 vs 3 -> "2" (first) is correct
    assert s["response_len_max"] == 100 and s["response_len_mean"] == pytest.approx(25.0)  # (10+20+30+100+4*10)/8
    assert s["formatted_rate"] == pytest.approx(7 / 8) and s["truncated_rate"] == pytest.approx(1 / 8)
    assert s["ci95"][0] <= s["accuracy"] <= s["ci95"][1]


# ----------------------------------------------------------------------------- the pipeline
class FakeActor:
    """Scripted responses: ``table[problem] = [text, ...]``; counts the prompts it is asked for."""

    def __init__(self, table, tokenizer=None):
        self.table, self.tokenizer, self.prompts = table, tokenizer, []

    def generate(self, prompts, *, n, temperature, top_p, max_tokens, stop, include_stop, seed):
        self.prompts += prompts
        out = []
        for p in prompts:
            texts = next(v for k, v in self.table.items() if k in p)
            out.append([Sample(prompt_ids=[0], response_ids=[1] * (3 + len(t) // 4), text=t,
                               logprobs=[], finish_reason="length" if t.endswith("...") else "stop")
                        for t in (texts * n)[:n]])
        return out

    def close(self):
        pass


def test_pipeline_scores_through_the_real_grader(tmp_path):
    tasks = {
        "arith": [{"problem": "P1 2+2", "answer": "4"}, {"problem": "P2 3+3", "answer": "6"}],
        "alts": [{"problem": "P3 half", "answer": ["0.5", "\\frac{1}{2}"]},
                 {"problem": "P4 amc", "answer": "142"}],
    }
    actor = FakeActor({
        "P1": ["so \\boxed{4}", "\\boxed{5}", "\\boxed{4}", "no box ..."],
        "P2": ["\\boxed{7}", "\\boxed{7}", "\\boxed{6}", "\\boxed{8}"],
        "P3": ["\\boxed{\\frac{1}{2}}", "\\boxed{\\dfrac12}", "\\boxed{1}", "\\boxed{0.5}"],
        "P4": ["\\boxed{142}"] * 4,
    })
    rows, summary = evaluate(actor, tasks, template="qwen_math", n_samples=4, temperature=1.0,
                             max_tokens=64, grade_workers=1, model_name="fake", output_dir=str(tmp_path))
    a, b = summary["tasks"]["arith"], summary["tasks"]["alts"]
    assert [s["reward"] for s in rows[0]["samples"]] == [1, 0, 1, 0]
    assert a["accuracy"] == pytest.approx((0.5 + 0.25) / 2)
    assert a["maj@n"] == pytest.approx(0.5)  # P1: "4" wins; P2: "7" wins (wrong)
    assert a["formatted_rate"] == pytest.approx(7 / 8) and a["truncated_rate"] == pytest.approx(1 / 8)
    assert a["pass@k"]["2"] == pytest.approx((5 / 6 + 0.5) / 2)
    assert b["accuracy"] == pytest.approx((0.75 + 1) / 2)  # a list reference is any-of
    assert summary["average"]["accuracy"] == pytest.approx((a["accuracy"] + b["accuracy"]) / 2)
    # The files: the schema reads them back, and summary.json holds what was returned.
    back = schema.read_samples(str(tmp_path))
    assert [(r["task"], r["index"]) for r in back] == [("arith", 0), ("arith", 1), ("alts", 0), ("alts", 1)]
    assert back == rows and rows[0]["prompt"].endswith("P1 2+2<|im_end|>\n<|im_start|>assistant\n")
    assert rows[2]["samples"][0]["answer"] == "\\frac{1}{2}" and rows[0]["model"] == "fake"
    assert json.load(open(tmp_path / "summary.json")) == json.loads(json.dumps(summary))
    assert summary_to_metrics(summary)["eval/alts/accuracy"] == b["accuracy"]
    assert "average" in format_table(summary)


def test_r1_template_and_warnings(caplog):
    actor = FakeActor({"2+2": ["<think> easy </think> <answer> 4 </answer>"]}, tokenizer=None)
    with caplog.at_level(logging.WARNING):
        rows, summary = evaluate(actor, {"t": [{"problem": "2+2", "answer": "4"}]}, template="r1",
                                 n_samples=2, temperature=0.0, grade_workers=1,
                                 model_name="org/Some-7B-Instruct")
    assert summary["tasks"]["t"]["accuracy"] == 1.0 and rows[0]["template"] == "r1"
    assert "instruction-tuned" in caplog.text and "identical" in caplog.text
    shots = few_shot([("1+1?", "\\boxed{2}")])  # an unregistered Template: graded by its rule
    rows, summary = evaluate(FakeActor({"2+2": [" \\boxed{4}"]}), {"t": [{"problem": "2+2", "answer": 4}]},
                             template=shots, grade_workers=1)
    assert summary["tasks"]["t"]["accuracy"] == 1.0 and rows[0]["template"] == "1shot_no"


def test_resume_skips_finished_problems(tmp_path, tiny_model_dir):
    from understand_r1_zero.actor import make_actor

    inner = make_actor("hf", tiny_model_dir, seed=0, dtype="float32", max_model_len=512)

    class Counting:
        tokenizer, prompts = inner.tokenizer, []

        def generate(self, prompts, **kw):
            self.prompts += prompts
            return inner.generate(prompts, **kw)

    kw = dict(template="qwen_math", n_samples=1, temperature=0.0, max_tokens=8, grade_workers=1,
              model_name="tiny", chunk_size=2)
    actor = Counting()
    full_rows, full = evaluate(actor, SYNTH, output_dir=str(tmp_path / "a"), **kw)
    assert len(actor.prompts) == 6
    path = tmp_path / "a" / "samples.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]) + lines[3][:25])  # killed mid-write of the 4th row
    actor.prompts = []
    rows, summary = evaluate(actor, SYNTH, output_dir=str(tmp_path / "a"), **kw)
    assert len(actor.prompts) == 3  # problems 3, 4, 5 only
    assert rows == full_rows and summary == full
    assert len(schema.read_samples(str(path))) == 6
    actor.prompts = []
    evaluate(actor, SYNTH, output_dir=str(tmp_path / "a"), **kw)  # complete: nothing to generate
    assert actor.prompts == []
    with pytest.raises(ValueError, match="different config"):
        evaluate(actor, SYNTH, output_dir=str(tmp_path / "a"), **{**kw, "template": "no"})
    inner.close()


def test_tiny_model_on_benchmark_slices_hf(tmp_path, tiny_model_dir, shared_data):
    from understand_r1_zero.actor import make_actor

    tasks = load_eval_tasks(os.path.join(shared_data, "evaluation_suite"), limit=10)
    assert list(tasks) == ["aime", "amc", "math", "minerva", "olympiad_bench"]
    assert tasks["amc"][0]["answer"] == "142" and isinstance(tasks["olympiad_bench"][0]["answer"], str)
    actor = make_actor("hf", tiny_model_dir, seed=0, dtype="float32", max_model_len=2048)
    try:
        rows, summary = evaluate(actor, tasks, template="qwen_math", max_tokens=16, grade_workers=2,
                                 model_name="tiny", output_dir=str(tmp_path))
    finally:
        actor.close()
    assert len(rows) == 50 and len(schema.read_samples(str(tmp_path))) == 50
    for t, s in summary["tasks"].items():
        assert set(schema.SUMMARY_TASK_FIELDS) <= set(s) and s["n_problems"] == 10
        assert 0 < s["response_len_mean"] and s["response_len_max"] <= 16
        assert 0 <= s["accuracy"] <= 1 and s["ci95"][0] <= s["accuracy"] <= s["ci95"][1]
    assert all(0 < x["length"] <= 16 for r in rows for x in r["samples"])


def test_tiny_model_vllm(tmp_path, vllm_actor):
    rows, summary = evaluate(vllm_actor, SYNTH, template="qwen_math", max_tokens=16, grade_workers=1,
                             model_name="tiny", output_dir=str(tmp_path))
    assert len(schema.read_samples(str(tmp_path))) == 6
    assert all(0 < s["length"] <= 16 and s["finish_reason"] in ("stop", "length")
               for r in rows for s in r["samples"])
    assert summary["tasks"]["synth"]["n_problems"] == 6


# ----------------------------------------------------------------------------- data loading
def test_load_formats_and_bad_input(tmp_path, shared_data):
    suite = os.path.join(shared_data, "evaluation_suite")
    assert list(load_eval_tasks(suite, "math,aime", limit=3)) == ["math", "aime"]
    with pytest.raises(ValueError, match="available: aime, amc, math, minerva, olympiad_bench"):
        load_eval_tasks(suite, ["gsm8k"])
    with pytest.raises(ValueError, match="available columns: problem, answer"):
        load_eval_tasks(suite, ["minerva"], output_key="solution")
    with pytest.raises(FileNotFoundError, match="build_eval_data.py"):
        load_eval_tasks(str(tmp_path / "nope" / "evaluation_suite"))
    f = tmp_path / "mine.jsonl"
    f.write_text("".join(json.dumps({"question": f"q{i}", "final": [i, 2.0 * i]}) + "\n" for i in range(4)))
    t = load_eval_tasks(str(f), input_key="question", output_key="final", limit=2)
    assert t == {"mine": [{"problem": "q0", "answer": ["0", "0"]}, {"problem": "q1", "answer": ["1", "2"]}]}
    one = load_eval_tasks(os.path.join(shared_data, "math500_solutions"), limit=1)  # a single Dataset dir
    assert list(one) == ["math500_solutions"]


# ----------------------------------------------------------------------------- the CLI
def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, os.path.join(ROOT, "evaluate_model.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_cli_errors_are_one_line(tmp_path, tiny_model_dir):
    r = _cli("--model", tiny_model_dir, "--eval_data", str(tmp_path / "missing"), "--backend", "hf")
    assert r.returncode == 2 and "build_eval_data.py" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _cli("--model", "x", "--temprature", "1")
    assert r.returncode != 0 and "unknown flag --temprature; did you mean --temperature" in r.stderr


def _fake_run(root):
    """A training --save_path as train_zero_math.py leaves it (its config.json is not a model's)."""
    model = root / "checkpoints" / "step_00080" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    (root / "checkpoints" / "step_00080" / "trainer_state.json").write_text("{}")
    (root / "config.json").write_text(json.dumps({"algo": "drgrpo", "save_path": str(root)}))
    (root / "metrics.jsonl").write_text('{"step": 0}\n')
    return root


@pytest.mark.parametrize("case", ["run_dir", "checkpoint", "missing", "missing_and_no_data", "hub_offline"])
def test_cli_model_that_is_not_a_model_is_one_line(tmp_path, tiny_model_dir, case):
    """Checked first (before the data and before the output dir is made): exit 2, one line, no
    traceback, nothing left behind."""
    run = _fake_run(tmp_path / "runs" / "zero_math")
    model = {"run_dir": str(run), "checkpoint": str(run / "checkpoints" / "step_00080"),
             "missing": "/nonexistent/model", "missing_and_no_data": "/no/such/model",
             "hub_offline": "Qwen/Qwen2.5-Math-1.5b"}[case]
    data = [] if case == "missing_and_no_data" else ["--eval_data", str(tmp_path)]
    out = tmp_path / "out"
    r = _cli("--model", model, *data, "--output", str(out))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    want = {"run_dir": f"is a training run, not a model; its models are in {run}/checkpoints/step_XXXXX/model "
                       f"(latest: {run}/checkpoints/step_00080/model)",
            "checkpoint": f"is a training checkpoint; its model is {run}/checkpoints/step_00080/model",
            "missing": "does not exist", "missing_and_no_data": "does not exist",
            "hub_offline": "could not reach the model hub"}[case]
    assert lines[0].startswith(f"evaluate_model.py: error: --model {model!r}") and want in lines[0], lines[0]
    assert not out.exists()


def test_cli_prompt_longer_than_context_is_one_line(tmp_path, tiny_model_dir):
    """Found before generating: the problem is named, nothing is written, the fix is given."""
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n"
                    + json.dumps({"problem": "long " * 200, "answer": "3"}) + "\n")
    r = _cli("--model", tiny_model_dir, "--backend", "hf", "--dtype", "float32", "--max_tokens", "8",
             "--max_model_len", "128", "--eval_data", str(data), "--tasks", "d", "--output", str(tmp_path / "o"))
    err = r.stderr.strip().splitlines()[-1]  # after the INFO log lines; no traceback
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert err.startswith("evaluate_model.py: error: 1 prompt(s) do not fit the actor's context of "
                          "128 positions (longest: d#1,")
    assert "raise max_model_len" in err and not (tmp_path / "o" / "samples.jsonl").exists()


def test_cli_tiny_model_hf(tmp_path, tiny_model_dir, shared_data):
    out = tmp_path / "out"
    r = _cli("--model", tiny_model_dir, "--backend", "hf", "--dtype", "float32", "--limit", "2",
             "--max_tokens", "8", "--max_model_len", "2048", "--grade_workers", "1",
             "--tasks", "aime,amc,math,minerva,olympiad_bench",
             "--eval_data", os.path.join(shared_data, "evaluation_suite"), "--output", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "average" in r.stdout and "olympiad_bench" in r.stdout
    summary = json.load(open(out / "summary.json"))
    assert list(summary["tasks"]) == ["aime", "amc", "math", "minerva", "olympiad_bench"]
    assert summary["config"]["model"] == tiny_model_dir and summary["config"]["temperature"] == 0.0
    # how it ran is recorded beside the numbers, and a slice says so
    run_config = json.load(open(out / "run_config.json"))
    for c in (summary["config"], run_config):
        assert (c["backend"], c["limit"], c["max_model_len"]) == ("hf", 2, 2048)
    assert "(slice: first 2 problems per task" in r.stdout
    assert len(schema.read_samples(str(out))) == 10
    assert json.load(open(out / "run_config.json"))["max_tokens"] == 8


# ----------------------------------------------------------------------------- build_eval_data converters
def test_converters_on_local_records():
    assert bed.all_boxed("a \\boxed{\\frac{1}{2}} b \\boxed{3} \\boxed{") == ["\\frac{1}{2}", "3"]
    aime = [{"problem": " P ", "answer": "204", "url": "https://x/2024_AIME_I_Problems/Problem_1"},
            {"problem": "Q", "answer": "5", "url": "https://x/2023_AIME_II_Problems/Problem_1"}]
    assert bed.convert_aime(aime) == [{"problem": "P", "answer": "204"}]
    assert bed.convert_amc([{"problem": "P", "answer": 142.0}]) == [{"problem": "P", "answer": "142"}]
    assert bed.convert_math500([{"problem": "P", "solution": "so \\boxed{5}", "answer": ""}]) == \
        [{"problem": "P", "answer": "5"}]
    assert bed.convert_minerva([{"problem": "P", "solution": "\\boxed{0.01} or \\boxed{0.02} or \\boxed{0.01}"}]) == \
        [{"problem": "P", "answer": ["0.01", "0.02"]}]
    assert bed.convert_minerva([{"question": "P", "answer": "9.6\n"}]) == [{"problem": "P", "answer": ["9.6"]}]
    ob = [{"question": "Q", "context": None, "final_answer": ["$\\frac{1}{2}$"]},
          {"question": "Q2", "context": "Setup.", "final_answer": ["3", "3"]}]
    assert bed.convert_olympiad_bench(ob) == [{"problem": "Q", "answer": ["\\frac{1}{2}"]},
                                              {"problem": "Setup.\nQ2", "answer": ["3"]}]
    assert bed.convert_gsm8k([{"question": "Q", "answer": "work\n#### 1,234"}]) == [{"problem": "Q", "answer": "1234"}]
    math = [{"problem": "A", "level": "Level 4", "solution": "\\boxed{7}"},
            {"problem": "B", "level": "Level 2", "solution": "\\boxed{1}"},
            {"problem": "C", "level": "Level 5", "solution": "\\boxed{2}"}]
    assert bed.convert_math_train(math, exclude={"C"}) == [{"problem": "A", "answer": "7"}]


def test_build_script_writes_a_loadable_suite(tmp_path, monkeypatch):
    fake = {  # one or two records per hub source, in each source's own field names
        "AI-MO/aimo-validation-aime": [{"problem": "A1", "answer": "204", "url": "x/2024_AIME_I/1"}],
        "AI-MO/aimo-validation-amc": [{"problem": "B1", "answer": 142.0}],
        "HuggingFaceH4/MATH-500": [{"problem": "C1", "solution": "\\boxed{3}", "answer": "3"}],
        "math-ai/minervamath": [{"question": "D1", "answer": "9.6"},
                                {"question": "D2", "solution": "\\boxed{1} or \\boxed{2}"}],
        "Hothan/OlympiadBench": [{"question": "E1", "context": None, "final_answer": ["$5$"]}],
    }
    monkeypatch.setattr(bed, "_fetch", lambda hub_id, cfgs, splits: fake[hub_id])
    bed.main(out=str(tmp_path), only="evaluation_suite")
    tasks = load_eval_tasks(str(tmp_path / "evaluation_suite"))
    assert list(tasks) == ["aime", "amc", "math", "minerva", "olympiad_bench"]
    assert tasks["amc"] == [{"problem": "B1", "answer": "142"}]
    assert tasks["minerva"] == [{"problem": "D1", "answer": "9.6"}, {"problem": "D2", "answer": ["1", "2"]}]
    assert tasks["olympiad_bench"] == [{"problem": "E1", "answer": "5"}]


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_sharded_evaluation_equals_one_process(demo_base_model, tmp_path, backend):
    """Training evaluates on every rank (each its share of every chunk, gathered): greedy rows
    and summary are identical for 1 and 2 processes."""
    from understand_r1_zero.learner import free_port

    worker = os.path.join(os.path.dirname(__file__), "eval_worker.py")
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    out = {}
    for nproc in (1, 2):
        cmd = [sys.executable, worker] if nproc == 1 else \
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
             "--master_port", str(free_port()), worker]
        r = subprocess.run(cmd + [demo_base_model, backend, str(tmp_path / f"{nproc}.json")],
                           capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        out[nproc] = json.load(open(tmp_path / f"{nproc}.json"))
    assert [(r["task"], r["index"]) for r in out[2]["rows"]] == [(r["task"], r["index"]) for r in out[1]["rows"]]
    assert out[2]["rows"] == out[1]["rows"]
    assert out[2]["summary"] == out[1]["summary"]
    assert 0 < out[1]["summary"]["tasks"]["synthetic"]["accuracy"] < 1  # a real signal, not all-0


def test_run_config_records_how_a_resumed_run_runs_now(tmp_path):
    """A slice extended to the full set keeps its rows, and run_config.json says it is no longer a
    slice; a backend change is refused (hf and vLLM rows would mix)."""
    from understand_r1_zero.evaluation import check_run_config

    base = {"model": "m", "template": "qwen_math", "n_samples": 1, "temperature": 0.0, "top_p": 1.0,
            "max_tokens": 8, "seed": 0, "backend": "hf", "max_model_len": 0}
    check_run_config(str(tmp_path), {**base, "limit": 20})
    (tmp_path / "samples.jsonl").write_text('{"task": "math"}\n')
    check_run_config(str(tmp_path), {**base, "limit": 0})
    assert json.load(open(tmp_path / "run_config.json"))["limit"] == 0
    with pytest.raises(ValueError, match="backend 'hf' -> 'vllm'"):
        check_run_config(str(tmp_path), {**base, "backend": "vllm", "limit": 0})
