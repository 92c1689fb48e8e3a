#!/usr/bin/env bash
# The whole DAMI-Pref pipeline on the bundled toy pair, each step a command you can run alone:
#   rollouts of the toy training problems → preference pairs → rankers (DAMI-Pref and the
#   DAMI-Pred / DAMI-Routing baselines) → evaluation against every baseline, offline and live.
# The problem sets are the seeded ones shipped in dami_pref/toy/problems (rebuilt by
# `python data_builders/toy_pair.py --problems_only`). Finished steps are reused when rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM=false

echo "== 1/4 rollouts: 1,500 training problems × 11 λ"
python data_builders/rollout.py --config configs/rollout_toy.yaml
echo "== 2/4 preference pairs"
python data_builders/pairs.py --config configs/pairs_toy.yaml --overwrite
echo "== 3/4 rankers: DAMI-Pref, then the DAMI-Pred and DAMI-Routing baselines"
accelerate launch train/pref.py --config configs/toy.yaml
accelerate launch train/pref.py --config configs/toy.yaml --objective pred --output outputs/toy/ranker_pred
accelerate launch train/pref.py --config configs/toy.yaml --objective route --output outputs/toy/ranker_route
echo "== 4/4 evaluation on the 700 toy test problems"
python eval/run.py --config configs/eval_toy.yaml
