#!/usr/bin/env bash
# The whole DAMI-Pref pipeline on the bundled toy pair, each step a command you can run alone:
#   rollouts of the toy training problems → preference pairs → rankers (DAMI-Pref with the
#   accuracy-first objective, the paper's pairwise DAMI-Pref, and the DAMI-Pred / DAMI-Routing
#   baselines) → evaluation against every baseline, offline and live.
# The problem sets are the seeded ones shipped in dami_pref/toy/problems (rebuilt by
# `dami-pref toy --problems_only`). Rollouts are reused when rerun; the other steps are redone.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM=false

echo "== 1/4 rollouts: 1,500 training problems × 11 λ"
dami-pref rollout --config configs/toy/rollout.yaml
echo "== 2/4 preference pairs"
dami-pref pairs --config configs/toy/pairs.yaml --overwrite
echo "== 3/4 rankers: DAMI-Pref (acc), the paper's DAMI-Pref (pref), DAMI-Pred, DAMI-Routing"
for objective in acc pref pred route; do
    output=outputs/toy/ranker$([ "$objective" = acc ] || echo "_$objective")
    accelerate launch train/pref.py --config configs/toy/train.yaml --objective "$objective" \
        --output_dir "$output" --overwrite_output_dir
done
echo "== 4/4 evaluation on the 900 toy test problems"
dami-pref eval --config configs/toy/eval.yaml --overwrite
# The same pipeline for the Qwen3-4B Instruct/Thinking-2507 pair on a GPU node:
#   ./scripts/run_qwen3_4b.sh
