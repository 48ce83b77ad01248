import pytest

from understand_r1_zero.templates import ANSWER_TAG, BOXED, TEMPLATES, few_shot, get_template


def test_all_templates_present():
    assert {"qwen_math", "r1", "no", "prime_zero", "open_reasoner_zero",
            "llama_instruct", "r1_distill"} <= set(TEMPLATES)


def test_qwen_math_format_and_rules():
    t = get_template("qwen_math")
    p = t("What is 1+1?")
    assert p.startswith("<|im_start|>system\nPlease reason step by step")
    assert p.endswith("What is 1+1?<|im_end|>\n<|im_start|>assistant\n")
    assert "<|im_end|>" in t.stop and t.extraction == BOXED and not t.include_stop


def test_r1_keeps_answer_stop():
    t = get_template("r1")
    assert t("Q").endswith("\nUser: Q\nAssistant: <think>")
    assert t.stop == ("</answer>",) and t.include_stop and t.extraction == ANSWER_TAG


def test_no_template_is_identity():
    assert get_template("no")("2+2?") == "2+2?"


def test_hyphen_alias_and_unknown_name():
    assert get_template("prime-zero") is TEMPLATES["prime_zero"]
    with pytest.raises(ValueError, match="valid names: qwen_math, r1, no"):
        get_template("qwen")


def test_eval_only_templates_rejected_for_training():
    with pytest.raises(ValueError, match="evaluation-only"):
        get_template("r1_distill", for_training=True)
    assert get_template("r1", for_training=True).train


def test_few_shot():
    t = few_shot([("1+1?", "2. \\boxed{2}")] * 4)
    p = t("3+3?")
    assert p.count("Question:") == 5 and p.endswith("Question: 3+3?\nAnswer:")
    assert t.extraction == BOXED and "\n\nQuestion:" in t.stop
