#!/usr/bin/env bash
# GRPO counterpart of llama3.2_3b_r1_drgrpo.sh.
# Data: python scripts/build_eval_data.py --out data   (on a networked machine; see README)
# One node, 8 GPUs:   bash examples/llama3.2_3b_r1_grpo.sh
# Several nodes:      NNODES=2 NODE_RANK=<0|1> MASTER_ADDR=<node0> bash examples/llama3.2_3b_r1_grpo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source examples/_launch.sh
launch \
  --pretrain meta-llama/Llama-3.2-3B \
  --algo grpo \
  --reward math \
  --prompt_template r1 \
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
  --eval_max_length 3000 \
  --eval_limit 0 \
  --num_samples 8 \
  --rollout_batch_size 128 \
  --generate_max_length 3000 \
  --temperature 1.0 \
  --top_p 1.0 \
  --train_batch_size 128 \
  --micro_batch_size 1 \
  --num_ppo_epochs 1 \
  --learning_rate 1e-6 \
  --lr_scheduler constant \
  --warmup_steps 0 \
  --max_norm 1.0 \
  --weight_decay 0.0 \
  --lora_rank 0 \
  --lora_alpha 32 \
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
  --scale_rewards group \
  --max_steps 400 \
  --num_prompt_epoch 20 \
  --seed 42 \
  --actor vllm \
  --actor_threads 1 \
  --vllm_gpu_ratio 0.35 \
  --vllm_sleep True \
  --zero_stage 2 \
  --bf16 True \
  --gradient_checkpointing True \
  --share_prompts True \
  --truncated zero_reward \
  --grade_workers 8 \
  --grade_timeout 5 \
  --save_steps 100 \
  --resume auto \
  --use_wb True \
  --wb_project understand-r1-zero \
  --tensorboard False \
  --log_rollouts True \
  --save_path runs/llama3.2-3b-r1-grpo \
  --wb_run_name llama3.2-3b-r1-grpo
