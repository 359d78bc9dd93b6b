"""From a torch model to the deployed network: the weights actually programmed and the layer list with
the shapes the model has now, mapped by the mapping engine.

The layer list comes from the one torch tracer (:func:`imcflow.frontends.torch_trace.trace_layers`):
each Conv2d/Linear call is a layer named after its module (``name#k`` for the k-th call of a shared
module), with the input size that really reaches it, in execution order. Weights are read as
programmed, from the one source of stored weights (:func:`imcflow.quant.stored_weights`): a quantized
layer's integer levels (mask applied after quantization); otherwise the float weight the forward pass
uses (``torch.nn.utils.prune`` masks included, since ``module.weight`` is already masked).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from torch import nn

from imcflow.compress.base import CompressionContext, CompressionMethod, DeployedLayer, DeployedNetwork
from imcflow.errors import ConfigError
from imcflow.frontends.torch_trace import trace_layers, trace_module
from imcflow.hardware.array import ArraySpec
from imcflow.layers import Network
from imcflow.mapping import MappingOptions, map_network
from imcflow.quant.modules import is_quantized, masked_float_weight, stored_weights


def extract_network(model: nn.Module, input_shape: Sequence[int], name: str = "model") -> Network:
    """The model's layer list as the mapping engine sees it (real geometry), from the one tracer."""
    return trace_module(model, input_shape, name, source="torch model")


def deployed_weight(module: nn.Conv2d | nn.Linear) -> tuple[np.ndarray, bool]:
    """The weights programmed for ``module`` and whether they are quantized integer levels."""
    if is_quantized(module):
        return stored_weights(module).integers.cpu().numpy(), True
    return masked_float_weight(module).cpu().numpy().copy(), False


def nonzero_before_quant(module: nn.Conv2d | nn.Linear) -> int:
    """Non-zero float weights of ``module`` after its mask (what the compression left), before any
    quantizer rounds small weights to zero."""
    return int(np.count_nonzero(masked_float_weight(module).cpu().numpy()))


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def deploy(model: nn.Module, input_shape: Sequence[int], array: ArraySpec,
           methods: Iterable[str] | None = None, options: MappingOptions | None = None,
           method: CompressionMethod | None = None, ctx: CompressionContext | None = None,
           name: str = "model", cost_preset: str | None = None) -> DeployedNetwork:
    """Read the deployed weights and layer list of ``model`` and map them with each mapping method.

    ``method`` (with its ``ctx``) may annotate the layers (skipped rows, origins). With ``cost_preset``
    (a hardware preset of :mod:`imcflow.hardware.preset`) the cost model's energy, latency and area
    are attached per mapping method.
    """
    options = options or MappingOptions()
    layers = []
    for traced in trace_layers(model, input_shape, name):
        lname, module, rec = traced.name, traced.module, traced.layer
        weight, quantized = deployed_weight(module)
        expected = (rec.out_channels, rec.group_in_channels, rec.Kh, rec.Kw) if rec.kind == "conv" \
            else (rec.out_channels, rec.in_channels)
        if tuple(weight.shape) != expected:
            raise ConfigError(f"layer {lname!r}: deployed weight shape {tuple(weight.shape)} does not "
                              f"match the layer record {expected}")
        layers.append(DeployedLayer(rec, weight, quantized, origin=lname,
                                    nonzero_before_quant=nonzero_before_quant(module) if quantized else None))
    deployed_layers = tuple(layers)
    if method is not None and ctx is not None:
        deployed_layers = tuple(method.annotate(model, deployed_layers, ctx))
    network = Network(name, tuple(d.layer for d in deployed_layers), input_shape=tuple(input_shape),
                      source="deployed torch model", geometry="real")
    mapping = map_network(network, array, methods, options)
    return DeployedNetwork(deployed_layers, mapping, count_parameters(model),
                           _cost_of(mapping, cost_preset) if cost_preset else None)


def _cost_of(mapping: Any, preset: str) -> dict[str, dict[str, float | None]]:
    """Energy, latency and area per mapping method from :mod:`imcflow.cost` with a hardware preset
    (``isaac``, ``sram-dong2020``, ...); composite (low-rank) layers are costed factor by factor."""
    from imcflow.cost import CostSettings, cost_mapping
    from imcflow.hardware.preset import load_preset

    settings = CostSettings(load_preset(preset))
    out: dict[str, dict[str, float | None]] = {}
    for m in (*mapping.methods, "best"):
        figures = cost_mapping(mapping, m, settings).totals
        out[m] = {"energy_j": figures.energy_j, "latency_s": figures.latency_s,
                  "area_mm2": figures.area_mm2}
    return out
