# Sourced by the recipes: how to launch train_zero_math.py on one node or several.
#   NNODES=1 (default): torchrun on this node's GPUs (NPROC_PER_NODE, default 8).
#   NNODES>1: set NODE_RANK, MASTER_ADDR, MASTER_PORT on every node (torchrun rendezvous),
#   or use DeepSpeed's launcher with a hostfile:  deepspeed --hostfile hostfile train_zero_math.py ...
# Each rank colocates its own vLLM engine (--vllm_gpu_ratio of its GPU), asleep during updates.
NNODES=${NNODES:-1}
NPROC_PER_NODE=${NPROC_PER_NODE:-8}
launch() {
  if [[ "$NNODES" == "1" ]]; then
    torchrun --standalone --nproc_per_node "$NPROC_PER_NODE" train_zero_math.py "$@"
  else
    torchrun --nnodes "$NNODES" --node_rank "${NODE_RANK:?set NODE_RANK}" \
      --master_addr "${MASTER_ADDR:?set MASTER_ADDR}" --master_port "${MASTER_PORT:-29500}" \
      --nproc_per_node "$NPROC_PER_NODE" train_zero_math.py "$@"
  fi
}
