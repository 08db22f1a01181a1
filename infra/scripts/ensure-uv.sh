#!/usr/bin/env bash
# Ensure uv (Python package manager) is on PATH; installs it from PyPI when missing.
set -euo pipefail
if command -v uv >/dev/null 2>&1; then exit 0; fi
echo "[socle] installing uv from PyPI" >&2
python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
command -v uv >/dev/null 2>&1 || { echo "[socle] uv installed but not on PATH: add \$(python3 -m site --user-base)/bin to PATH" >&2; exit 1; }
