"""Mapping-aware compression: one module per method against one interface (:mod:`.base`), the deployed
network every method reports (:mod:`.deploy`), and the train -> apply -> fine-tune -> report pipeline
(:mod:`.pipeline`).

Importing this package registers the built-in methods: ``none`` (identity, the baseline as deployed),
``magnitude`` (unstructured L1 pruning, a mask kept through fine-tuning), ``vwc-sdk``, the low-rank
methods (``lowrank``, ``group-lowrank``) and their pruning baselines at a matched parameter count. A
new method is one module that subclasses :class:`CompressionMethod`: a third-party package publishes
it under the ``imcflow.methods`` entry point (found when the registry is first read); a built-in one
calls :func:`register_method` and is listed in ``_METHOD_MODULES`` below. Its optional torch-free
plan renders itself (:class:`~imcflow.compress.base.MethodPlan`).
"""
from __future__ import annotations

import importlib

from imcflow.compress.base import (
    CompressionContext,
    CompressionMethod,
    CompressionReport,
    DeployedLayer,
    DeployedNetwork,
    MappingSummary,
    MethodOption,
    RoundRecord,
    StepResult,
    TrainingHooks,
    get_method,
    method_names,
    register_method,
)

_METHOD_MODULES = ("imcflow.compress.simple", "imcflow.compress.vwc_sdk",
                   "imcflow.compress.lowrank_method", "imcflow.compress.prune_baselines")
for _module in _METHOD_MODULES:
    importlib.import_module(_module)

__all__ = ["CompressionContext", "CompressionMethod", "CompressionReport", "DeployedLayer",
           "DeployedNetwork", "MappingSummary", "MethodOption", "RoundRecord", "StepResult",
           "TrainingHooks", "get_method", "method_names", "register_method"]
