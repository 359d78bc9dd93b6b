"""Frontends: turn a torch module, an ONNX file, a NeuroSim CSV or a network file into a Network.

This package's import registers file loaders by suffix with :mod:`imcflow.networks`; each loader
imports its module (and its heavy dependency: onnx, yaml) only when called.

=========  ===========================================  ===========================================
suffix     module                                       what it reads
=========  ===========================================  ===========================================
.onnx      :mod:`imcflow.frontends.onnx_import`         ONNX model (external data, shape inference)
.csv       :mod:`imcflow.frontends.neurosim`            NeuroSim NetWork.csv (padded convention)
.yaml/.yml :mod:`imcflow.frontends.netfile`             the plain network file
.json      :mod:`imcflow.frontends.netfile`             the plain network file
=========  ===========================================  ===========================================
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from imcflow.layers import Network
from imcflow.networks import register_file_loader

_LOADERS = {".onnx": ("imcflow.frontends.onnx_import", "load_onnx"),
            ".csv": ("imcflow.frontends.neurosim", "read_neurosim_csv"),
            ".yaml": ("imcflow.frontends.netfile", "read_network_file"),
            ".yml": ("imcflow.frontends.netfile", "read_network_file"),
            ".json": ("imcflow.frontends.netfile", "read_network_file")}


def _lazy(module: str, function: str) -> Callable[[str, tuple[int, ...] | None], Network]:
    def load(path: str, input_shape: tuple[int, ...] | None) -> Network:
        return getattr(importlib.import_module(module), function)(path, input_shape)

    load.__name__ = load.__qualname__ = function
    load.__doc__ = f"Load a network file with :func:`{module}.{function}` (imported on first use)."
    return load


for _suffix, (_module, _function) in _LOADERS.items():
    # A NetWork.csv lists every size itself (no input shape to take).
    register_file_loader(_suffix, _lazy(_module, _function), takes_input=_suffix != ".csv")
