"""From a torch model to the deployed network: the weights actually programmed and the layer list with
the shapes the model has now, mapped by the mapping engine.

The layer list is read by running one dummy input through the model with forward hooks on every
``nn.Conv2d`` and ``nn.Linear`` (subclasses included, so quantized modules are found too): each layer's
input size is what really reaches it, its name is the module's qualified name, the order is execution
order. Weights are read as programmed: when :mod:`imcflow.quant` provides ``integer_weights`` for a
quantized module, the integer levels (mask applied after quantization); otherwise the float weight the
forward pass uses (``torch.nn.utils.prune`` masks included, since ``module.weight`` is already masked).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from imcflow.compress.base import CompressionContext, CompressionMethod, DeployedLayer, DeployedNetwork
from imcflow.errors import ConfigError, UnsupportedLayerError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer, Network, linear_layer
from imcflow.mapping import DEFAULT_METHODS, MappingOptions, map_network


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _conv_record(name: str, module: nn.Conv2d, x: torch.Tensor) -> ConvLayer:
    if isinstance(module.padding, str):
        # 'same'/'valid' padding: resolve to the integer padding torch uses (odd kernels only).
        if module.padding == "valid":
            padding = (0, 0)
        else:
            ext = [d * (k - 1) for k, d in zip(module.kernel_size, module.dilation)]
            if any(e % 2 for e in ext):
                raise UnsupportedLayerError(f"layer {name!r}: padding='same' with an even kernel extent")
            padding = (ext[0] // 2, ext[1] // 2)
    else:
        padding = _pair(module.padding)
    return ConvLayer(name, module.in_channels, module.out_channels, _pair(module.kernel_size),
                     input_size=(int(x.shape[-2]), int(x.shape[-1])), stride=_pair(module.stride),
                     padding=padding, dilation=_pair(module.dilation), groups=module.groups,
                     bias=module.bias is not None)


def weight_layers(model: nn.Module, input_shape: Sequence[int]) -> list[tuple[str, nn.Module, ConvLayer]]:
    """(qualified name, module, layer record) of every conv/linear layer, in execution order.

    A module called several times (shared weights) is listed once, at its first call.
    """
    names = {m: n for n, m in model.named_modules()}
    found: dict[nn.Module, tuple[str, nn.Module, ConvLayer]] = {}
    unsupported: list[str] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], _out: Any) -> None:
        if module in found:
            return
        name = names.get(module, type(module).__name__)
        x = inputs[0]
        if isinstance(module, nn.Conv2d):
            found[module] = (name, module, _conv_record(name, module, x))
        elif isinstance(module, nn.Linear):
            found[module] = (name, module, linear_layer(name, module.in_features, module.out_features,
                                                        bias=module.bias is not None))
    handles = []
    for n, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            handles.append(m.register_forward_hook(hook))
        elif isinstance(m, (nn.Conv1d, nn.Conv3d, nn.ConvTranspose2d)):
            unsupported.append(f"{n} ({type(m).__name__})")
    if unsupported:
        for h in handles:
            h.remove()
        raise UnsupportedLayerError(f"cannot deploy weight layers: {', '.join(unsupported)}")
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if not found:
        raise UnsupportedLayerError("the model has no conv or linear layer that its forward pass uses")
    return list(found.values())


def extract_network(model: nn.Module, input_shape: Sequence[int], name: str = "model") -> Network:
    """The model's layer list as the mapping engine sees it (real geometry)."""
    layers = tuple(rec for _, _, rec in weight_layers(model, input_shape))
    return Network(name, layers, input_shape=tuple(input_shape), source="torch model", geometry="real")


def deployed_weight(module: nn.Module) -> tuple[np.ndarray, bool]:
    """The weights programmed for ``module`` and whether they are quantized integer levels."""
    try:
        from imcflow.quant import integer_weights  # optional until the quantizers exist
    except ImportError:
        integer_weights = None
    if integer_weights is not None:
        try:
            q = integer_weights(module)
        except (TypeError, ValueError, AttributeError, NotImplementedError):
            q = None  # not a quantized module: fall through to its float weight
        if q is not None:
            q = q[0] if isinstance(q, tuple) else q
            return np.asarray(q.detach().cpu().numpy() if torch.is_tensor(q) else q), True
    w = module.weight.detach()
    mask = getattr(module, "weight_mask", None)
    if torch.is_tensor(mask) and mask.shape == w.shape and not hasattr(module, "weight_orig"):
        w = w * mask  # a mask kept beside the weight (not the torch.nn.utils.prune reparametrization)
    return w.cpu().numpy().copy(), False


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def deploy(model: nn.Module, input_shape: Sequence[int], array: ArraySpec,
           methods: Iterable[str] = DEFAULT_METHODS, options: MappingOptions | None = None,
           method: CompressionMethod | None = None, ctx: CompressionContext | None = None,
           name: str = "model", cost_preset: str | None = None) -> DeployedNetwork:
    """Read the deployed weights and layer list of ``model`` and map them with each mapping method.

    ``method`` (with its ``ctx``) may annotate the layers (skipped rows, origins). With ``cost_preset``
    (a hardware preset of :mod:`imcflow.hardware.preset`) the cost model's energy, latency and area
    are attached per mapping method.
    """
    options = options or MappingOptions()
    records = weight_layers(model, input_shape)
    layers = []
    for lname, module, rec in records:
        weight, quantized = deployed_weight(module)
        expected = (rec.out_channels, rec.group_in_channels, *rec.kernel_size) if rec.kind == "conv" \
            else (rec.out_channels, rec.in_channels)
        if tuple(weight.shape) != expected:
            raise ConfigError(f"layer {lname!r}: deployed weight shape {tuple(weight.shape)} does not "
                              f"match the layer record {expected}")
        layers.append(DeployedLayer(rec, weight, quantized, origin=lname))
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
    for m in mapping.methods:
        figures = cost_mapping(mapping, m, settings).totals
        out[m] = {"energy_j": figures.energy_j, "latency_s": figures.latency_s,
                  "area_mm2": figures.area_mm2}
    return out
