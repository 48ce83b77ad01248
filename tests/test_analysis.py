"""The analysis probes on hand-made runs and eval outputs: the numbers, the CLIs, the judge."""

import http.server
import json
import math
import os
import subprocess
import sys
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # `analysis` is a folder of scripts, not part of the installed package

from analysis import keyword_count, length_bias, template_effects  # noqa: E402
from understand_r1_zero import schema  # noqa: E402


# ----------------------------------------------------------------------------- hand-made inputs
def _rollout(step, i, reward, length, truncated=False, response="x"):
    return {"step": step, "prompt_index": i // 2, "sample_index": i % 2, "prompt": "p", "response": response,
            "reference": "1", "answer": "1" if reward else None, "reward": float(reward),
            "formatted": bool(reward), "length": length, "finish_reason": "length" if truncated else "stop",
            "truncated": truncated}


def _write_rollouts(run, by_step):
    """by_step: {step: [(reward, length, truncated[, response]), ...]}"""
    for step, items in by_step.items():
        schema.append_jsonl(schema.rollout_path(str(run), step),
                            [_rollout(step, i, *it) for i, it in enumerate(items)])


def _metrics_row(step, **kw):
    row = {k: 0.0 for k in schema.METRICS_REQUIRED}
    row.update(step=step, **kw)
    return row


def _sample(response, reward, formatted, length=5, finish="stop"):
    return {"response": response, "answer": None, "reward": reward, "formatted": formatted,
            "length": length, "finish_reason": finish}


def _samples_row(task, index, samples, template="qwen_math"):
    return {"task": task, "index": index, "problem": "q", "reference": "1", "prompt": "p",
            "template": template, "model": "m", "samples": samples}


def _cell(df, **where):
    sub = df
    for k, v in where.items():
        sub = sub[sub[k] == v]
    assert len(sub) == 1, (where, sub)
    return sub.iloc[0]


# ----------------------------------------------------------------------------- length bias
def test_length_by_outcome_from_rollouts(tmp_path):
    a, b = tmp_path / "grpo", tmp_path / "other"
    _write_rollouts(a, {1: [(1, 10, False), (1, 20, False), (0, 30, False), (0, 96, True)],
                        2: [(1, 12, False), (0, 40, False), (0, 50, False), (1, 96, True)]})  # mask mode
    _write_rollouts(b, {1: [(0, 7, False), (1, 9, False)]})
    df, fig = length_bias.length_by_outcome([str(a), f"B={b}"])
    assert list(df.columns) == length_bias.COLUMNS
    c = _cell(df, run="grpo", step=1, outcome="correct")
    assert (c["n"], c["mean_length"], c["std_length"], c["source"]) == (2, 15.0, 5.0, "rollouts")
    assert _cell(df, run="grpo", step=1, outcome="incorrect")["mean_length"] == 30
    t = _cell(df, run="grpo", step=2, outcome="truncated")  # truncated wins over a positive reward
    assert (t["n"], t["mean_length"]) == (1, 96)
    assert _cell(df, run="grpo", step=2, outcome="incorrect")["mean_length"] == 45
    assert _cell(df, run="B", step=1, outcome="incorrect")["mean_length"] == 7
    assert len(df) == 3 + 3 + 2
    incorrect_panel = fig.axes[1]
    assert incorrect_panel.get_title() == "incorrect responses" and len(incorrect_panel.lines) == 2


def test_length_by_outcome_metrics_fallback(tmp_path):
    run = tmp_path / "r"
    schema.append_jsonl(str(run / "metrics.jsonl"), [
        {"step": 0, "eval/average/accuracy": 0.1},
        _metrics_row(1, **{"actor/response_len_correct": 20.0, "actor/response_len_incorrect": 30.0,
                           "actor/response_len_truncated": float("nan")}),  # written as null
        _metrics_row(2, **{"actor/response_len_correct": 22.0, "actor/response_len_incorrect": 35.0}),
    ])
    df, _ = length_bias.length_by_outcome({"run": str(run)})
    assert set(df["source"]) == {"metrics"} and set(df["step"]) == {1, 2}
    assert "truncated" not in set(df["outcome"]) and df["n"].isna().all()
    assert _cell(df, step=2, outcome="incorrect")["mean_length"] == 35.0


def _synthetic_df(grpo_slope, drgrpo_slope, n_incorrect=40, steps=9):
    import pandas as pd

    recs = []
    for run, slope in (("grpo", grpo_slope), ("drgrpo", drgrpo_slope)):
        for s in range(1, steps + 1):
            recs.append({"run": run, "step": s, "outcome": "incorrect", "n": n_incorrect,
                         "mean_length": 30 + slope * s, "std_length": 4.0, "source": "rollouts"})
            recs.append({"run": run, "step": s, "outcome": "correct", "n": 60, "mean_length": 20.0,
                         "std_length": 2.0, "source": "rollouts"})
    return pd.DataFrame(recs)


def test_window_summary_and_verdict():
    df = _synthetic_df(grpo_slope=2.0, drgrpo_slope=0.0)
    summ = length_bias.window_summary(df).set_index(["run", "outcome"])
    g = summ.loc[("grpo", "incorrect")]
    # 9 steps -> windows of 3: first = steps 1-3 (mean 34), last = steps 7-9 (mean 46)
    assert (g["window_steps"], g["first_mean"], g["last_mean"], g["growth"]) == (3, 34.0, 46.0, 12.0)
    # pooled std over steps 7..9: within 4, between means 44/46/48 -> sqrt(16 + 8/3)
    assert g["last_se"] == pytest.approx(math.sqrt(16 + 8 / 3) / math.sqrt(120))
    assert g["last_share"] == pytest.approx(0.4)
    v = length_bias.verdict(df)
    assert v["effect_shows"] is True
    assert v["incorrect"]["last_diff"] == pytest.approx(16.0) and v["incorrect"]["growth_diff"] == pytest.approx(12.0)
    assert v["end_gap_beyond_2se"] is True and v["summary"].endswith("-> the length bias shows (end gap beyond 2 naive SE)")
    tiny = length_bias.verdict(_synthetic_df(0.01, 0.0))  # right direction, gap 0.08 << 2 SE
    assert tiny["effect_shows"] is True and tiny["end_gap_beyond_2se"] is False
    assert tiny["incorrect"]["last_diff"] == pytest.approx(0.08) and "(within 2 naive SE" in tiny["summary"]
    # the words claim no more than the numbers: a direction within 2 SE is "not significant"
    assert "not significant" in tiny["summary"] and "length bias shows" not in tiny["summary"]
    assert length_bias.verdict(_synthetic_df(0.0, 2.0))["effect_shows"] is False
    too_easy = length_bias.verdict(_synthetic_df(2.0, 0.0, n_incorrect=2))
    assert too_easy["effect_shows"] is None and "too easy" in too_easy["summary"]


FAKE_TRAIN = r'''
import json, os, sys
sys.path.insert(0, {root!r})
from understand_r1_zero import schema
a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
if a.get("--fail"):
    print("boom: something broke"); sys.exit(3)
save, algo = a["--save_path"], a["--algo"]
os.makedirs(save, exist_ok=True)
json.dump(a, open(os.path.join(save, "argv.json"), "w"))
json.dump({{"algo": algo, "learning_rate": 5e-5}}, open(os.path.join(save, "config.json"), "w"))
for s in range(1, int(a["--max_steps"]) + 1):
    inc = 30 + (3 * s if algo == "grpo" else 0)
    rows = [dict(step=s, prompt_index=i, sample_index=0, prompt="p", response="r", reference="1",
                 answer=None, reward=float(i < 4), formatted=True, length=20 if i < 4 else inc,
                 finish_reason="stop", truncated=False) for i in range(40)]
    schema.append_jsonl(schema.rollout_path(save, s), rows)
'''


def test_run_comparison_with_a_stand_in_trainer(tmp_path):
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN.format(root=ROOT))
    out, runs = tmp_path / "out", tmp_path / "runs"
    res = length_bias.run_comparison(str(out), max_steps=6, seed=7, extra_flags="--eval_limit 5",
                                     runs_dir=str(runs), script=str(script), smooth=1)
    assert res["effect_shows"] is True and res["incorrect"]["grpo_growth"] == pytest.approx(12.0)
    paired = res["incorrect_paired_by_prompt"]  # same prompts: per-prompt diff is 3 * step
    assert (paired["first_mean_diff"], paired["last_mean_diff"], paired["last_pairs"]) == (4.5, 16.5, 72)
    argv = json.load(open(runs / "grpo_seed7" / "argv.json"))
    assert argv["--seed"] == "7" and argv["--max_steps"] == "6" and argv["--eval_limit"] == "5"
    for f in ("length_by_outcome.csv", "length_by_outcome.png", "verdict.json", "window_summary.csv"):
        assert (out / f).stat().st_size > 0
    saved = json.load(open(out / "verdict.json"))
    assert saved["seed"] == 7 and saved["train_config"]["grpo"] == {"algo": "grpo", "learning_rate": 5e-5}
    with pytest.raises(RuntimeError, match="boom: something broke"):
        length_bias.run_comparison(str(out), max_steps=2, extra_flags={"fail": 1}, runs_dir=str(runs),
                                   script=str(script))


def test_length_bias_cli_writes_csv_and_png(tmp_path):
    run = tmp_path / "run"
    _write_rollouts(run, {1: [(1, 10, False), (0, 30, False)], 2: [(0, 35, False)]})
    r = subprocess.run([sys.executable, os.path.join(ROOT, "analysis", "length_bias.py"), "plot", str(run),
                        "--out", str(tmp_path / "res" / "lb")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    import pandas as pd

    df = pd.read_csv(tmp_path / "res" / "lb.csv")
    assert _cell(df, step=2, outcome="incorrect")["mean_length"] == 35
    assert (tmp_path / "res" / "lb.png").stat().st_size > 0


# ----------------------------------------------------------------------------- keywords
def test_count_keywords():
    c = keyword_count.count_keywords(
        "Wait, let me re-check. Hmm... HOWEVER, double check: 5. Check:47+3=50. Yes. "
        "Let's verify: await a recheck, then re-examine. self-check: no. waiting.")
    assert {k: v for k, v in c.items() if v} == {
        "wait": 1, "re-check": 1, "hmm": 1, "however": 1, "double-check": 1, "check:": 1,
        "let me verify": 1, "recheck": 1, "re-examine": 1, "total": 9}
    assert keyword_count.count_keywords("")["total"] == 0


def test_keyword_counts_over_training_steps(tmp_path):
    run = tmp_path / "run"
    _write_rollouts(run, {
        1: [(1, 5, False, "Check: 1+1=2. Yes. Check: 1+1=2. Yes."), (1, 5, False, "\\boxed{2}"),
            (0, 5, False, "wait, hmm"), (0, 9, True, "Wait")],
        2: [(0, 5, False, "no reflection")]})
    df, fig = keyword_count.keyword_counts(str(run))
    c = _cell(df, step=1, outcome="correct")
    assert (c["n"], c["total_mean"], c["reflective_frac"], c["check:"]) == (2, 1.0, 0.5, 1.0)
    i = _cell(df, step=1, outcome="incorrect")  # the truncated response counts as incorrect
    assert (i["n"], i["total_mean"], i["wait"], i["hmm"]) == (2, 1.5, 1.0, 0.5)
    assert _cell(df, step=2, outcome="incorrect")["reflective_frac"] == 0
    assert len(fig.axes) == 2


def test_keyword_counts_over_an_eval_file_and_cli(tmp_path):
    out = tmp_path / "eval"
    schema.append_jsonl(str(out / "samples.jsonl"), [
        _samples_row("math", 0, [_sample("However, \\boxed{1}", 1.0, True), _sample("\\boxed{2}", 0.0, True)]),
        _samples_row("aime", 0, [_sample("wait wait", 0.0, False), _sample("x", 0.0, False)]),
    ])
    df, _ = keyword_count.keyword_counts(str(out / "samples.jsonl"))
    assert _cell(df, task="math", outcome="correct")["however"] == 1.0
    assert _cell(df, task="math", outcome="incorrect")["total_mean"] == 0.0
    a = _cell(df, task="aime", outcome="incorrect")
    assert (a["n"], a["total_mean"], a["reflective_frac"]) == (2, 1.0, 0.5)
    keyword_count.main(str(out), out=str(tmp_path / "res") + "/")
    assert (tmp_path / "res" / "keyword_counts.csv").exists() and (tmp_path / "res" / "keyword_counts.png").exists()


def test_judge_not_configured_is_one_clear_error(tmp_path, monkeypatch):
    for k in ("URZ_JUDGE_BASE_URL", "URZ_JUDGE_MODEL", "URZ_JUDGE_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("URZ_JUDGE_MODEL", "judge-model")
    with pytest.raises(keyword_count.JudgeNotConfigured, match="URZ_JUDGE_BASE_URL") as e:
        keyword_count.judge_config()
    assert "URZ_JUDGE_MODEL" not in str(e.value) and "\n" not in str(e.value)
    run = tmp_path / "run"
    _write_rollouts(run, {1: [(1, 5, False, "wait")]})
    with pytest.raises(SystemExit, match="URZ_JUDGE_BASE_URL"):
        keyword_count.main(str(run), out=str(tmp_path / "o") + "/", judge=True)


def test_judge_parsing_with_a_fake_transport():
    seen = []

    def transport(url, headers, payload):
        seen.append((url, headers, payload))
        text = payload["messages"][0]["content"]
        return {"choices": [{"message": {"content": "YES." if "wait" in text else "no"}}]}

    cfg = {"base_url": "http://judge.invalid/v1", "model": "m", "api_key": None}
    assert keyword_count.judge_reflection(["wait, recheck", "2+2=4", ""], cfg, transport=transport) == [True, False, False]
    assert seen[0][0] == "http://judge.invalid/v1/chat/completions" and seen[0][1] == {}
    assert seen[0][2]["model"] == "m" and seen[0][2]["temperature"] == 0
    assert keyword_count.parse_judgement({"choices": [{"message": {"content": "maybe"}}]}) is None
    assert keyword_count.parse_judgement({"error": "rate limited"}) is None


def test_judge_over_loopback_http(tmp_path, monkeypatch):
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append((self.path, self.headers.get("Authorization"), body))
            ans = "YES" if "Check:" in body["messages"][0]["content"] else "NO"
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": ans}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("URZ_JUDGE_BASE_URL", f"http://127.0.0.1:{server.server_port}/v1/")
        monkeypatch.setenv("URZ_JUDGE_MODEL", "stub")
        monkeypatch.setenv("URZ_JUDGE_API_KEY", "test-key")
        run = tmp_path / "run"
        _write_rollouts(run, {1: [(1, 5, False, "Check: 1+1=2. Yes."), (1, 5, False, "\\boxed{2}"),
                                  (0, 5, False, "Check: 1+1=3. Yes.")]})
        df, fig = keyword_count.keyword_counts(str(run), judge=True, judge_max=10)
    finally:
        server.shutdown()
    assert len(requests) == 3 and {r[0] for r in requests} == {"/v1/chat/completions"}
    assert {r[1] for r in requests} == {"Bearer test-key"} and requests[0][2]["model"] == "stub"
    c = _cell(df, step=1, outcome="correct")
    assert (c["judge_n"], c["judge_frac"]) == (2, 0.5)
    assert _cell(df, step=1, outcome="incorrect")["judge_frac"] == 1.0
    assert len(fig.axes) == 3


# ----------------------------------------------------------------------------- templates
def test_template_table_numbers():
    rows = {
        "qwen_math": [
            _samples_row("math", 0, [_sample("\\boxed{1}", 1.0, True, 4), _sample("\\boxed{2}", 0.0, True, 6)]),
            _samples_row("math", 1, [_sample("<answer>3</answer>", 0.0, False, 8),  # answered, wrong format
                                     _sample("\\boxed{3", 0.0, False, 10, "length")]),  # unclosed: no answer
            _samples_row("aime", 0, [_sample("\\boxed{7}", 1.0, True), _sample("\\boxed{7}", 1.0, True)]),
        ],
        "r1": [_samples_row("math", 0, [_sample("</think> <answer>1</answer>", 1.0, True),
                                        _sample("<think> \\boxed{1}", 0.0, False)], template="r1")],
    }
    df = template_effects.template_table(rows)
    assert list(df.columns) == template_effects.TABLE_COLUMNS
    m = _cell(df, template="qwen_math", task="math")
    assert (m["n_problems"], m["n_responses"], m["accuracy"]) == (2, 4, 0.25)
    assert (m["answering_rate"], m["formatted_rate"], m["truncated_rate"], m["response_len_mean"]) == (0.75, 0.5, 0.25, 7.0)
    avg = _cell(df, template="qwen_math", task="average")
    assert (avg["n_problems"], avg["accuracy"], avg["formatted_rate"]) == (3, 0.625, 0.75)
    r = _cell(df, template="r1", task="math")
    assert (r["accuracy"], r["answering_rate"], r["formatted_rate"]) == (0.5, 1.0, 0.5)
    assert len(template_effects.plot_table(df).axes) == 2


def test_resolve_template_few_shot():
    t = template_effects.resolve_template("4shot")
    prompt = t.format("What is 1+1?")
    assert prompt.count("\\boxed{") == 4 and prompt.endswith("Question: What is 1+1?\nAnswer:")
    assert "\n\nQuestion:" in t.stop and template_effects.resolve_template("2shot_qwen_math").format("q").count("\\boxed{") >= 2
    with pytest.raises(ValueError, match="only 1..4 shots"):
        template_effects.resolve_template("9shot")


def test_template_effects_end_to_end_tiny_model(tmp_path, tiny_model_dir):
    tasks = {"toy": [{"problem": "What is 1 + 1?", "answer": "2"}, {"problem": "What is 2 + 3?", "answer": "5"}]}
    df, fig = template_effects.template_effects(tiny_model_dir, tasks, backend="hf", max_tokens=8, grade_workers=0,
                                                samples_dir=str(tmp_path / "samples"), dtype="float32")
    assert list(df["template"].unique()) == list(template_effects.DEFAULT_TEMPLATES)
    assert len(df) == 4 * 2 and set(df["task"]) == {"toy", "average"}
    assert (df["n_problems"] == 2).all() and (df["formatted_rate"] <= df["answering_rate"]).all()
    assert df[["accuracy", "answering_rate", "formatted_rate"]].stack().between(0, 1).all()
    assert (df["response_len_mean"] <= 8).all()
    rows = schema.read_samples(str(tmp_path / "samples" / "4shot"))
    assert rows[0]["template"] == "4shot_no" and "Question: What is 1 + 1?" in rows[0]["prompt"]
    csv, png = template_effects.table(str(tmp_path / "samples" / "qwen_math"), f"r1={tmp_path / 'samples' / 'r1'}",
                                      out=str(tmp_path / "res") + "/")
    import pandas as pd

    again = pd.read_csv(csv)
    assert set(again["template"]) == {"qwen_math", "r1"} and os.path.getsize(png) > 0
    assert _cell(again, template="r1", task="toy")["formatted_rate"] == _cell(df, template="r1", task="toy")["formatted_rate"]


def test_default_outputs_stay_out_of_the_repo_and_empty_plots_say_so(tmp_path):
    """keyword_count writes beside its source by default; a run with no keyword says so; the
    template plot labels every bar (a zero-height bar is otherwise invisible)."""
    run = tmp_path / "run"
    _write_rollouts(run, {1: [(1, 5, False, "ok"), (0, 5, False, "no")]})
    keyword_count.main(str(run))
    assert (run / "keyword_counts.csv").exists() and (run / "keyword_counts.png").exists()
    _, fig = keyword_count.keyword_counts(str(run))
    assert all("no keywords found" in [t.get_text() for t in ax.texts] for ax in fig.axes)
    rows = {"qwen_math": [_samples_row("math", 0, [_sample("\\boxed{1}", 1.0, True)])],
            "r1": [_samples_row("math", 0, [_sample("x", 0.0, False)], template="r1")]}
    fig = template_effects.plot_table(template_effects.template_table(rows), model="m")
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert "0.00" in labels and "1.00" in labels
    assert "m: n = math 1 problems" in fig._suptitle.get_text()
