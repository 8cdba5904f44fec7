#!/usr/bin/env bash
# Command 1 of the README: set up (first run only) and serve the explorer on the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh requirements.txt
exec .venv/bin/python -m streamlit run streamlit_app.py "$@"
