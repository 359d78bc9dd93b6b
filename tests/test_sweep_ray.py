"""The same sweep on a local 2-worker Ray cluster and on local processes gives the same table."""
from __future__ import annotations

import pandas as pd
import pytest

from imcflow.sweep import run_sweep, spec_from_dict
from imcflow.sweep.executors import RayExecutor

ray = pytest.importorskip("ray", reason="ray is not installed (pip install ray)")

SPEC = {"name": "ray",
        "axes": {"model": "smallcnn-8", "array": "64x64", "cell_bits": [1, 2], "weight_bits": 4,
                 "adc_bits": [5, 8],
                 "mapping": ["sdk", "vwsdk", "opt-energy"],
                 "compression": ["none", {"method": "magnitude", "options": {"sparsity": 0.5}}]},
        "training": {"data": "digits", "epochs": 1, "finetune_epochs": 1}}


def test_ray_and_local_executors_give_identical_results(tmp_path):
    spec = spec_from_dict(SPEC)
    local = run_sweep(spec, str(tmp_path / "local"), "local", workers=2, progress=False, chunk=5)
    executor = RayExecutor(workers=2)  # no address: a private local cluster, 2 CPUs, loopback
    try:
        assert ray.cluster_resources()["CPU"] == 2
        remote = run_sweep(spec, str(tmp_path / "ray"), executor, progress=False, chunk=5)
    finally:
        executor.close()
    assert not ray.is_initialized()
    assert remote.computed == local.computed == spec.size
    pd.testing.assert_frame_equal(remote.to_frame(), local.to_frame(), check_exact=True)
    trained = local.to_frame().query("kind == 'trained'")
    assert len(trained) == spec.size // 2 and trained["accuracy"].notna().all()
