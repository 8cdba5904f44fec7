#!/usr/bin/env bash
# Create .venv (if missing), install a requirements file into it, and install this project
# (`sop`, `explorer`, the `sop` command) editable; quiet when up to date.
# Usage: scripts/setup_env.sh requirements.txt
set -euo pipefail
cd "$(dirname "$0")/.."
req="${1:-requirements.txt}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
stamp=".venv/.installed-$(basename "$req")"
# Reinstall only when a requirements file changed since the last install.
if [ ! -f "$stamp" ] || [ "$req" -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ]; then
  "${pip[@]}" -r "$req"
  touch "$stamp"
fi
# The project itself, editable: `import sop` / `import explorer` then work from any directory,
# with no sys.path edits, and edits to the sources take effect at once.  Redone when pyproject.toml
# or requirements.txt (its dependencies) change, or when the checkout has moved.  A fresh venv
# on Python 3.11 has setuptools 65, too old to build an editable pyproject-only project
# (PEP 660), hence the upgrade; --no-build-isolation builds with it offline.
editable=".venv/.installed-editable"
if [ ! -f "$editable" ] || [ pyproject.toml -nt "$editable" ] || [ requirements.txt -nt "$editable" ] \
   || [ "$(cat "$editable")" != "$PWD" ]; then
  "${pip[@]}" "setuptools>=70.1"
  "${pip[@]}" --no-deps --no-build-isolation -e .
  echo "$PWD" > "$editable"
fi
