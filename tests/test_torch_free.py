"""Mapping needs only numpy: a hardware researcher can map a network without torch installed."""
import subprocess
import sys

CODE = """
import sys
sys.modules['torch'] = None  # any 'import torch' now fails
import imcflow
from imcflow import ArraySpec, map_network, load_network
r = map_network(load_network('resnet18-paper'), ArraySpec(512, 512))
assert r.totals('vwsdk').cycles == 4294
import imcflow.mapping, imcflow.layers, imcflow.hardware
for optional in ('imcflow.cost',):
    try:
        __import__(optional)
    except ModuleNotFoundError as e:
        assert e.name == optional, e  # absent is fine; needing torch is not
assert 'torch' not in [m for m, v in sys.modules.items() if v is not None]
print('ok')
"""


def test_mapping_imports_and_runs_without_torch():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
