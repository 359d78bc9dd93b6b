"""Built-in networks map without torch: the published layer lists are plain data, and the built-in
PyTorch models' layer lists come from a cache that must equal what tracing gives today."""
from __future__ import annotations

import subprocess
import sys

from imcflow.models import MODELS
from imcflow.networks import load_network
from imcflow.networks.builtin import CACHE_FILE, regenerate, render_cache, traced_network


def test_cache_equals_tracing_every_builtin_model():
    # Regenerate in memory (tracing every model at its default input) and compare with the shipped
    # file byte for byte; on a difference, `python -m imcflow.networks` rewrites it.
    fresh = regenerate()
    assert list(fresh["models"]) == list(MODELS)
    assert render_cache(fresh) == CACHE_FILE.read_text(encoding="utf-8"), \
        "stale cache: run 'python -m imcflow.networks'"
    for name, spec in MODELS.items():  # and the records read back equal the traced ones
        assert load_network(name) == traced_network(name), name
        assert load_network(name).input_shape == spec.input_shape


TORCH_BLOCKED = """
import contextlib, io, sys
sys.modules['torch'] = None  # any 'import torch' now fails
from imcflow.networks import load_network
from imcflow.cli import main
from imcflow.errors import ConfigError
assert load_network('vgg13-paper').layers[0].in_channels == 3
net = load_network('resnet18')
assert len(net.layers) == 21 and net.input_shape == (3, 224, 224)
for argv in (['map', 'vgg13-paper'], ['map', 'resnet18', '--array', '512x512'],
             ['cost', 'mobilenetv2', '--method', 'all', '--format', 'json']):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0, argv
    assert 'im2col' in out.getvalue()
try:
    load_network('resnet18', (3, 64, 64))  # not cached: needs tracing, hence torch
except ConfigError as exc:
    assert 'not in the built-in cache' in str(exc) and 'torch' in str(exc), exc
else:
    raise AssertionError('tracing without torch did not fail')
assert 'torch' not in [m for m, v in sys.modules.items() if v is not None]
print('ok')
"""


def test_builtin_networks_load_and_map_without_torch():
    out = subprocess.run([sys.executable, "-c", TORCH_BLOCKED], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
