"""Run a PyTorch model "on the crossbars": swap its Conv2d/Linear layers for simulated ones (and back).

Each :class:`SimulatedLayer` fake-quantizes its weights once (symmetric, per tensor, to the integer
range of the configured cells, ``config.weight_bits`` or 8 bits) and its input on every call (per
tensor: unsigned ``[0, 2**ib - 1]`` for non-negative inputs, else signed symmetric; ``ib`` =
``config.input_bits`` or 8), maps the layer for the input size it sees (cached), runs the integer
data through :class:`~imcflow.sim.executor.CrossbarLayer` and rescales; the bias is added digitally.
With an ideal crossbar the output equals the fake-quantized convolution exactly, so accuracy
differences come only from the configured non-idealities.

>>> import torch
>>> from imcflow.hardware import ArraySpec
>>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
>>> with on_crossbars(net, ArraySpec(16, 16)) as sim_net:
...     y = sim_net(torch.rand(1, 1, 5, 5))
>>> tuple(y.shape), type(net[0]).__name__
((1, 2, 3, 3), 'Conv2d')
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from imcflow.errors import UnsupportedLayerError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer
from imcflow.mapping import MappingOptions
from imcflow.sim.effects import SimConfig
from imcflow.sim.executor import CrossbarLayer, SimCounters
from imcflow.sim.tiles import build_tiles

DEFAULT_QUANT_BITS = 8


def quantize_symmetric(t: torch.Tensor, lo: int, hi: int) -> tuple[torch.Tensor, float]:
    """Integers ``round(t / scale)`` clipped to ``[lo, hi]`` and the scale (per tensor).

    >>> quantize_symmetric(torch.tensor([-1.0, 0.5, 2.0]), -127, 127)[0].tolist()
    [-64.0, 32.0, 127.0]
    """
    top = float(t.abs().max()) if t.numel() else 0.0
    levels = hi if t.numel() == 0 or float(t.min()) >= 0 or lo == 0 else min(hi, -lo)
    scale = top / levels if top > 0 else 1.0
    return torch.clamp(torch.round(t / scale), lo, hi), scale


class SimulatedLayer(nn.Module):
    """A Conv2d or Linear executed on simulated crossbars; ``original`` is the wrapped module."""

    def __init__(self, module: nn.Conv2d | nn.Linear, name: str, array: ArraySpec, method: str,
                 options: MappingOptions, config: SimConfig) -> None:
        super().__init__()
        if isinstance(module, nn.Conv2d) and (isinstance(module.padding, str)
                                              or module.padding_mode != "zeros"):
            raise UnsupportedLayerError(f"layer {name!r}: padding={module.padding!r} with padding_mode="
                                        f"{module.padding_mode!r}; the simulator takes integer zero "
                                        f"padding")
        self.original = module
        self.layer_name = name
        self.array, self.method, self.options, self.config = array, method, options, config
        wb = config.weight_bits or DEFAULT_QUANT_BITS
        lo, hi = config.weight_range() or (-(1 << (wb - 1)) + 1, (1 << (wb - 1)) - 1)
        w = module.weight.detach().to(torch.float64)
        self.w_int, self.w_scale = quantize_symmetric(w, max(lo, -hi), hi)
        self._sims: dict[tuple[int, int], CrossbarLayer] = {}
        self.counters = SimCounters()

    def _record(self, h: int, w: int) -> ConvLayer:
        m = self.original
        if isinstance(m, nn.Linear):
            return ConvLayer(self.layer_name, m.in_features, m.out_features, 1, kind="linear")
        return ConvLayer(self.layer_name, m.in_channels, m.out_channels, m.kernel_size, input_size=(h, w),
                         stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups)

    def _sim(self, h: int, w: int) -> CrossbarLayer:
        if (h, w) not in self._sims:
            layer = self._record(h, w)
            tiles = build_tiles(layer, self.w_int, self.array, self.method, self.options)
            self._sims[(h, w)] = CrossbarLayer(tiles, self.config)
        return self._sims[(h, w)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ib = self.config.input_bits or DEFAULT_QUANT_BITS
        xd = x.detach().to(torch.float64)
        signed = xd.numel() > 0 and float(xd.min()) < 0
        lo, hi = (-(1 << (ib - 1)) + 1, (1 << (ib - 1)) - 1) if signed else (0, (1 << ib) - 1)
        x_int, x_scale = quantize_symmetric(xd, lo, hi)
        if isinstance(self.original, nn.Linear):
            lead = x_int.shape[:-1]
            res = self._sim(1, 1).run(x_int.reshape(-1, x_int.shape[-1]))
            y = res.output.reshape(*lead, -1)
        else:
            res = self._sim(x.shape[2], x.shape[3]).run(x_int)
            y = res.output
        self.counters = self.counters + res.counters
        y = (y * (self.w_scale * x_scale)).to(x.dtype)
        if self.original.bias is not None:
            b = self.original.bias.detach()
            y = y + (b if isinstance(self.original, nn.Linear) else b[:, None, None])
        return y


def wrap_model(model: nn.Module, array: ArraySpec, method: str = "vwsdk",
               options: MappingOptions | None = None, config: SimConfig | None = None) -> nn.Module:
    """Replace every Conv2d and Linear of ``model`` (in place) by a :class:`SimulatedLayer`."""
    options, config = options or MappingOptions(), config or SimConfig()
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for name, module in targets:
        _set_module(model, name, SimulatedLayer(module, name, array, method, options, config))
    return model


def unwrap_model(model: nn.Module) -> nn.Module:
    """Put the original layers back (inverse of :func:`wrap_model`)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, SimulatedLayer):
            _set_module(model, name, module.original)
    return model


def model_counters(model: nn.Module) -> SimCounters:
    """Sum of the counters of every simulated layer since it was wrapped."""
    total = SimCounters()
    for m in model.modules():
        if isinstance(m, SimulatedLayer):
            total = total + m.counters
    return total


@contextmanager
def on_crossbars(model: nn.Module, array: ArraySpec, method: str = "vwsdk",
                 options: MappingOptions | None = None,
                 config: SimConfig | None = None) -> Iterator[nn.Module]:
    """``with on_crossbars(model, array) as m:`` runs ``m`` on simulated crossbars, then restores it."""
    wrap_model(model, array, method, options, config)
    try:
        yield model
    finally:
        unwrap_model(model)


def _set_module(root: nn.Module, dotted: str, new: nn.Module) -> None:
    if not dotted:
        raise UnsupportedLayerError("the model itself is a single Conv2d/Linear; wrap a container")
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)
