#!/usr/bin/env bash
# The whole DAMI-Pref pipeline for the Qwen3-4B-Instruct-2507 / Qwen3-4B-Thinking-2507 pair on a
# GPU node, every step from a config in configs/qwen3_4b/:
#   rollouts of 1,000 GSM8K training problems × 11 λ × 4 samples → preference pairs → rankers
#   (DAMI-Pref accuracy-first and as published, DAMI-Pred, DAMI-Routing; a Qwen3-0.6B backbone
#   with LoRA) → evaluation of every
#   method on GSM8K's test split, MATH-500 and AIME 2024.
#
#   ./scripts/run_qwen3_4b.sh                      # 8 GPUs (configs/accelerate/multi_gpu.yaml)
#   ACCELERATE_ARGS="--num_processes 1" ./scripts/run_qwen3_4b.sh          # one GPU
#
# Overrides, for other hardware or a smaller run (CI runs this script on the toy pair this way):
#   OUT               output root (default outputs/qwen3_4b)
#   ACCELERATE_ARGS   arguments of `accelerate launch` (default: the multi-GPU config)
#   EVAL_SETS         which evaluations to run (default "gsm8k math500 aime")
#   ROLLOUT_ARGS, PAIRS_ARGS, TRAIN_ARGS, EVAL_ARGS   extra flags for each stage, after the
#                     config, so they override it (e.g. ROLLOUT_ARGS="--limit 100")
# Finished rollouts are reused when rerun (they resume); the other steps are redone.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM=false

OUT=${OUT:-outputs/qwen3_4b}
read -r -a ACCEL <<< "${ACCELERATE_ARGS:---config_file configs/accelerate/multi_gpu.yaml}"
read -r -a ROLLOUT <<< "${ROLLOUT_ARGS:-}"
read -r -a PAIRS <<< "${PAIRS_ARGS:-}"
read -r -a TRAIN <<< "${TRAIN_ARGS:-}"
read -r -a EVAL <<< "${EVAL_ARGS:-}"
read -r -a SETS <<< "${EVAL_SETS:-gsm8k math500 aime}"
CFG=configs/qwen3_4b

echo "== 1/4 rollouts of the GSM8K training problems"
accelerate launch "${ACCEL[@]}" data_builders/rollout.py --config "$CFG/rollout.yaml" \
    --output "$OUT/rollouts_gsm8k" "${ROLLOUT[@]}"
echo "== 2/4 preference pairs"
dami-pref pairs --config "$CFG/pairs.yaml" --rollouts "$OUT/rollouts_gsm8k" \
    --output "$OUT/pairs_gsm8k" --overwrite "${PAIRS[@]}"
echo "== 3/4 rankers: DAMI-Pref (acc), the paper's DAMI-Pref (pref), DAMI-Pred, DAMI-Routing"
for objective in acc pref pred route; do
    suffix=$([ "$objective" = acc ] && echo "" || echo "_$objective")
    accelerate launch "${ACCEL[@]}" train/pref.py --config "$CFG/train.yaml" \
        --pairs "$OUT/pairs_gsm8k" --objective "$objective" --output_dir "$OUT/ranker$suffix" \
        --overwrite_output_dir \
        "${TRAIN[@]}"
done
echo "== 4/4 evaluation: ${SETS[*]}"
for set in "${SETS[@]}"; do
    config="$CFG/eval.yaml"
    [ "$set" = gsm8k ] || config="$CFG/eval_$set.yaml"
    dami-pref eval --config "$config" --output "$OUT/eval_$set" \
        --dami_pref_ranker "$OUT/ranker" --dami_pref_paper_ranker "$OUT/ranker_pref" \
        --dami_pred_ranker "$OUT/ranker_pred" \
        --dami_routing_ranker "$OUT/ranker_route" "${EVAL[@]}"
done
echo "results: $(for set in "${SETS[@]}"; do printf '%s ' "$OUT/eval_$set/results.md"; done)"
