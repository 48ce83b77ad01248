#!/usr/bin/env bash
# Dr. GRPO with LoRA on Qwen2.5-0.5B, on a small budget: X-R1's 4x RTX 3090 (24 GB) setting, one GPU per rank, each
# rank colocating its vLLM engine (asleep while the learner updates). LoRA rank 32 (alpha 64) on every linear layer:
# the optimizer holds state for the adapter alone, the actor gets merged weights W + (alpha/r) B A each step, and the
# final checkpoint holds the merged HF model (model/) beside the adapter (adapter/). lr 1e-5: LoRA wants ~10x the
# full fine-tune's 1e-6. Dropout 0: on-policy RL scores the sampled tokens, and dropout would make the learner's
# distribution differ from the sampler's. Responses up to 1024 tokens (X-R1's budget), gradient checkpointing, ZeRO-2.
# Data: python scripts/build_eval_data.py --out data   (on a networked machine; see README)
# One node, 4 GPUs:   bash examples/qwen2.5_0.5b_lora_drgrpo.sh
# Several nodes:      NNODES=2 NODE_RANK=<0|1> MASTER_ADDR=<node0> bash examples/qwen2.5_0.5b_lora_drgrpo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NPROC_PER_NODE=${NPROC_PER_NODE:-4}
source examples/_launch.sh
launch \
  --pretrain Qwen/Qwen2.5-0.5B \
  --algo drgrpo \
  --reward math \
  --prompt_template qwen_math \
  --prompt_data data/train/math_lvl3to5_8k \
  --train_split train \
  --input_key problem \
  --output_key answer \
  --max_train_samples 0 \
  --eval_data data/evaluation_suite \
  --eval_tasks aime,amc,math,minerva,olympiad_bench \
  --eval_steps 16 \
  --eval_temperature 0 \
  --eval_n 1 \
  --eval_max_length 1024 \
  --eval_limit 0 \
  --num_samples 8 \
  --rollout_batch_size 32 \
  --generate_max_length 1024 \
  --temperature 1.0 \
  --top_p 1.0 \
  --train_batch_size 256 \
  --micro_batch_size 4 \
  --num_ppo_epochs 1 \
  --learning_rate 1e-5 \
  --lr_scheduler constant \
  --warmup_steps 0 \
  --max_norm 1.0 \
  --weight_decay 0.0 \
  --lora_rank 32 \
  --lora_alpha 64 \
  --lora_dropout 0 \
  --lora_target_modules all-linear \
  --beta 0 \
  --kl_kind k3 \
  --clip_low 0.2 \
  --clip_high 0.2 \
  --clip_ratio_c 0 \
  --tis_cap 0 \
  --tis_level token \
  --tis_mode truncate \
  --scale_rewards none \
  --max_steps 400 \
  --num_prompt_epoch 20 \
  --seed 42 \
  --actor vllm \
  --actor_threads 1 \
  --vllm_gpu_ratio 0.3 \
  --vllm_sleep True \
  --zero_stage 2 \
  --bf16 True \
  --gradient_checkpointing True \
  --share_prompts True \
  --truncated zero_reward \
  --grade_workers 4 \
  --grade_timeout 5 \
  --save_steps 100 \
  --resume auto \
  --use_wb True \
  --wb_project understand-r1-zero \
  --tensorboard False \
  --log_rollouts True \
  --save_path runs/qwen2.5-0.5b-lora-drgrpo \
  --wb_run_name qwen2.5-0.5b-lora-drgrpo
