"""Whole-network NeuroSim traces from a PyTorch model and real images (needs torch).

One forward pass over a batch of real images records every conv/linear layer's input; the layer's
stored integer weights (:func:`stored_integer_weights`) and its integer input (quantized like the
crossbar simulator does: per tensor, unsigned ``[0, 2^b - 1]`` for non-negative inputs, signed
symmetric otherwise) become that layer's NeuroSim weight and input files, in the NetWork.csv
convention chosen (see :mod:`imcflow.frontends.neurosim`). Like NeuroSim's own ``hook.py`` (which
traces ``input[0]``), the files describe one image of the batch (``image_index``); the summary gives
the whole batch's input bit density and zero fraction, the quantities NeuroSim's activity-dependent
energy follows.
"""
from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import nn

from imcflow.errors import ConfigError, check_int
from imcflow.frontends.neurosim import (
    PADDING_CONVENTIONS,
    NeuroSimTrace,
    NeuroSimTraceSet,
    Padding,
    _check_choice,
    neurosim_rows,
    neurosim_trace,
    neurosim_version,
)
from imcflow.sim.wrapper import quantize_symmetric


def stored_integer_weights(module: nn.Module, weight_bits: int) -> np.ndarray:
    """The integers the crossbar stores for ``module``, from the one source of stored weights
    (:func:`imcflow.quant.stored_weights`, which the simulator and deploy read too): a quantized module
    gives its own integers (refused when they need more than ``weight_bits``); any other module is
    quantized symmetric per tensor to ``weight_bits``, exactly as the crossbar simulator programs it.
    """
    from imcflow.quant import stored_weights

    hi = (1 << (weight_bits - 1)) - 1
    out = stored_weights(module, float_qmax=hi).integers.detach().cpu().numpy().astype(np.int64)
    if out.size and np.abs(out).max() > hi:
        raise ConfigError(f"{type(module).__name__}: its quantizer stores integers up to "
                          f"{np.abs(out).max()}, more than {weight_bits}-bit weights hold; give "
                          f"--weight-bits of the quantizer")
    return out


def integer_input(x: torch.Tensor, bits: int) -> np.ndarray:
    """One layer input as the simulator quantizes it (see the module docstring)."""
    xd = x.detach().to(torch.float64)
    signed = xd.numel() > 0 and float(xd.min()) < 0
    lo, hi = (-(1 << (bits - 1)) + 1, (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    q, _ = quantize_symmetric(xd, lo, hi)
    return q.cpu().numpy().astype(np.int64)


def _capture_inputs(model: nn.Module, images: torch.Tensor) -> dict[nn.Module, torch.Tensor]:
    inputs: dict[nn.Module, torch.Tensor] = {}

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], _out: Any) -> None:
        if module not in inputs:  # a shared module is traced at its first call
            quant = cast("nn.Module | None", getattr(module, "input_quantizer", None))
            x = args[0]
            # a copy: an in-place activation later in the model must not change what was traced
            inputs[module] = (quant(x) if quant is not None else x).detach().clone()
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(images)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return inputs


def network_traces(model: nn.Module, images: torch.Tensor, name: str = "model", weight_bits: int = 8,
                   input_bits: int = 8, padding: Padding = "padded", version: str = "1.4",
                   image_index: int = 0, sub_array: int | None = None,
                   parallel_read: int | None = None) -> tuple[NeuroSimTraceSet, dict[str, Any]]:
    """Every layer's NeuroSim traces for ``images`` (N x C x H x W, already normalised as the model
    expects), and a summary with batch statistics.

    Returns ``(trace_set, summary)``; ``trace_set.files()`` gives the bytes to write.
    """
    from imcflow.frontends.torch_trace import trace_layers
    from imcflow.layers import Network

    _check_choice("padding", padding, PADDING_CONVENTIONS)
    neurosim_version(version)
    check_int("weight_bits", weight_bits, 2, 16)
    check_int("input_bits", input_bits, 2, 16)
    if images.ndim != 4 or len(images) == 0:
        raise ConfigError(f"images must be a non-empty N x C x H x W batch, got shape {tuple(images.shape)}")
    check_int("image_index", image_index, 0, len(images) - 1)
    found = trace_layers(model, tuple(images.shape[1:]))
    network = Network(name, tuple(t.layer for t in found), input_shape=tuple(images.shape[1:]),
                      source="torch model", geometry="real")
    export = neurosim_rows(network, padding)
    captured = _capture_inputs(model, images)
    traces: list[NeuroSimTrace] = []
    batch: list[dict[str, Any]] = []
    for traced in found:
        qname, module, layer = traced.name, traced.module, traced.layer
        x_all = integer_input(captured[module], input_bits)
        x = x_all[image_index]
        traces.append(neurosim_trace(layer, stored_integer_weights(module, weight_bits), x,
                                     weight_bits, input_bits, padding, network))
        # two's complement bits of signed inputs, as the trace writes them
        density = _bit_density(x_all & ((1 << input_bits) - 1), input_bits)
        batch.append({"layer": qname, "batch_input_bit_density": density,
                      "batch_zero_inputs": float((x_all == 0).mean())})
    trace_set = NeuroSimTraceSet(network, export, tuple(traces), version, sub_array, parallel_read)
    summary = trace_set.summary()
    for entry, stats in zip(summary["layers"], batch, strict=False):
        entry.update(stats)
    summary["images"] = int(len(images))
    summary["image_index"] = image_index
    return trace_set, summary


def _bit_density(values: np.ndarray, bits: int) -> float:
    """Mean fraction of 1 bits of ``bits``-bit non-negative integers (a popcount table lookup)."""
    table = np.array([bin(v).count("1") for v in range(1 << bits)], dtype=np.float64)
    return float(table[values].mean() / bits) if values.size else 0.0
