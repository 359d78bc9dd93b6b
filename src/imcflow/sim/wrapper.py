"""Run a PyTorch model "on the crossbars": swap its Conv2d/Linear layers for simulated ones (and back).

Each :class:`SimulatedLayer` holds the integers of its layer and runs them through
:class:`~imcflow.sim.executor.CrossbarLayer`; the bias is added digitally. Where the integers and scales
come from:

* **Weights**: from the one source of stored weights, :func:`imcflow.quant.stored_weights`. A quantized
  layer (:class:`~imcflow.quant.QuantConv2d`/``QuantLinear``) brings its own integers, scale (per output
  channel or per tensor) and mask, the ones its forward pass uses. A float layer is quantized once,
  symmetric per tensor, to the range of the configured cells (``config.weight_bits`` or 8 bits).
* **Inputs**, on every call: a layer whose module quantizes its input (``input_quantizer``, e.g. a
  :class:`~imcflow.quant.ClampedUniformActivation`) gets exactly the module's integer codes and step;
  any other input is quantized per tensor (unsigned ``[0, 2**ib - 1]`` for non-negative inputs, else
  signed symmetric; ``ib`` = ``config.input_bits`` or 8).
* **Layer records**: from the one torch tracer's :class:`~imcflow.frontends.torch_trace.CallLog`, so a
  layer is mapped for the input it sees with the same rules as ``imcflow map`` (``name#k`` for the k-th
  call of a shared module, a Linear on ``(N, T, F)`` is a ``T x 1`` map, ``padding='same'`` resolved
  once). :func:`simulated_layers` lists the records of the last forward pass.

The output is ``(Y * (s_w[o] * s_x)).to(x.dtype) + bias`` with ``Y`` the crossbars' integer output of
channel ``o``. **Exact settings**: an ideal crossbar (``SimConfig()``: no ADC, no noise; bit slicing
and bit-serial inputs are exact too when their ranges hold the integers) and a model that quantizes
every layer's input (``quantize_model(..., act_bits=b, quantize_first_input=True)``). Then ``Y`` is
exactly the integer convolution of the module's own integer inputs and weights, so the simulated
model is the quantized model: its output equals the module's ``integer outputs times scale`` bit for
bit, and its float forward up to float32 rounding. Accuracy differences come only from the configured
non-idealities (and, for layers whose input the model does not quantize, the simulator's input
quantization).

``mode`` chooses what is simulated with the same integers and the same ``SimConfig``: ``"crossbar"``
(default) the mapped tiles with bit slicing, bit-serial steps and an ADC read per column, step and row
tile; ``"layer-adc"`` the per-layer model that IBM aihwkit assumes (one ADC read of the full-precision
analog sum per output, input DAC, output noise; :mod:`imcflow.sim.layer_adc`).

Binary weights (``weight_bits=1`` with the offset encoding: ``{-1, +1}``) of a float layer are
quantized to their sign (0 counts as +1) with the scale ``mean(|w|)``, which minimises the squared
error of ``scale * sign(w)`` (XNOR-Net).

>>> import torch
>>> from imcflow.hardware import ArraySpec
>>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
>>> with on_crossbars(net, ArraySpec(16, 16)) as sim_net:
...     y = sim_net(torch.rand(1, 1, 5, 5))
>>> tuple(y.shape), type(net[0]).__name__
((1, 2, 3, 3), 'Conv2d')
"""
from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import torch
from torch import nn

from imcflow.errors import ConfigError, UnsupportedLayerError
from imcflow.frontends.torch_trace import WEIGHT_LAYER_TYPES, CallLog, TracedLayer, owns_weight_tensor
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer
from imcflow.layers.core import as_pair
from imcflow.mapping import MappingOptions
from imcflow.quant.modules import StoredWeights, is_quantized, stored_weights
from imcflow.sim.effects import SimConfig
from imcflow.sim.executor import CrossbarLayer, SimCounters
from imcflow.sim.layer_adc import LayerAdcModel
from imcflow.sim.tiles import build_tiles
from imcflow.validate import check_type

DEFAULT_QUANT_BITS = 8
MODES = ("crossbar", "layer-adc")


def quantize_symmetric(t: torch.Tensor, lo: int, hi: int) -> tuple[torch.Tensor, float]:
    """Integers ``round(t / scale)`` clipped to ``[lo, hi]`` and the scale (per tensor).

    >>> quantize_symmetric(torch.tensor([-1.0, 0.5, 2.0]), -127, 127)[0].tolist()
    [-64.0, 32.0, 127.0]
    """
    top = float(t.abs().max()) if t.numel() else 0.0
    levels = hi if t.numel() == 0 or float(t.min()) >= 0 or lo == 0 else min(hi, -lo)
    scale = top / levels if top > 0 else 1.0
    return torch.clamp(torch.round(t / scale), lo, hi), scale


def crossbar_weights(module: nn.Module, config: SimConfig | None = None) -> StoredWeights:
    """The integers (and scale, mask) the simulator programs for ``module`` under ``config``: the
    module's own stored weights when it is quantized, else its float weight quantized per tensor to the
    configured cells' range (``config.weight_bits`` or 8 bits). What NeuroSim traces should hold too.

    >>> conv = nn.Conv2d(1, 1, (1, 2), bias=False)
    >>> _ = conv.weight.data.copy_(torch.tensor([[[[0.5, -1.0]]]]))
    >>> crossbar_weights(conv).integers.flatten().tolist()    # 8 bits: max|w| -> 127
    [64, -127]
    """
    config = config or SimConfig()
    if config.binary and not is_quantized(module):
        weight = module.weight
        assert isinstance(weight, torch.Tensor)  # internal: callers pass Conv2d/Linear modules
        q, scale = quantize_binary(weight.detach().to(torch.float64))
        return StoredWeights(q.to(torch.int32), torch.tensor(scale, dtype=torch.float64), None, 1)
    wb = config.weight_bits or DEFAULT_QUANT_BITS
    lo, hi = config.weight_range() or (-(1 << (wb - 1)) + 1, (1 << (wb - 1)) - 1)
    return stored_weights(module, float_qmax=min(-lo, hi))


def quantize_binary(t: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``{-1, +1}`` (the sign, 0 -> +1) and the scale ``mean(|t|)`` (least squares for a sign code).

    >>> quantize_binary(torch.tensor([-1.0, 0.5, 0.0, 2.5]))
    (tensor([-1.,  1.,  1.,  1.]), 1.0)
    """
    scale = float(t.abs().mean()) if t.numel() else 0.0
    return torch.where(t >= 0, 1.0, -1.0).to(t.dtype), scale if scale > 0 else 1.0


class SimulatedLayer(nn.Module):
    """A Conv2d or Linear executed on simulated crossbars; ``original`` is the wrapped module.

    ``w_int`` (float64, integer-valued) and ``w_scale`` (float64, one per output channel) are the
    module's stored weights (:func:`imcflow.quant.stored_weights`), read when the layer first runs.
    ``log`` receives the layer record of every call (shared by all layers of a wrapped model).
    """

    def __init__(self, module: nn.Conv2d | nn.Linear, name: str, array: ArraySpec, method: str,
                 options: MappingOptions, config: SimConfig, log: CallLog | None = None,
                 mode: str = "crossbar") -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"layer {name!r}: mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
            # Mapping ignores how padded pixels are filled; executing a layer does not.
            raise UnsupportedLayerError(f"layer {name!r}: padding_mode={module.padding_mode!r}; the "
                                        f"simulator pads with zeros only")
        self.original = module
        self.layer_name = name
        self.array, self.method, self.options, self.config = array, method, options, config
        self.log = log if log is not None else CallLog()
        self._sims: dict[tuple[int, int], CrossbarLayer] = {}
        self._layer_adc: dict[tuple[int, int], LayerAdcModel] = {}
        self.counters = SimCounters()

    @cached_property
    def stored(self) -> StoredWeights:
        """The module's stored weights, read once, when the layer first runs (or is asked)."""
        return crossbar_weights(self.original, self.config)

    @property
    def w_int(self) -> torch.Tensor:
        return self.stored.integers.to(torch.float64)

    @property
    def w_scale(self) -> torch.Tensor:
        return self.stored.channel_scale().to(torch.float64)

    def _sim(self, layer: ConvLayer) -> CrossbarLayer:
        # One set of crossbars per module and input size: a module called twice holds the same weights
        # (and the same device noise, which is seeded by the module's name).
        key = as_pair(layer.input_size)
        if key not in self._sims:
            tiles = build_tiles(layer.with_changes(name=self.layer_name), self.w_int, self.array,
                                self.method, self.options)
            self._sims[key] = CrossbarLayer(tiles, self.config)
        return self._sims[key]

    def _analog(self, layer: ConvLayer) -> LayerAdcModel:
        key = as_pair(layer.input_size)
        if key not in self._layer_adc:
            self._layer_adc[key] = LayerAdcModel(self.w_int, layer, self.config, self.layer_name)
        return self._layer_adc[key]

    def _integer_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        quantizer = getattr(self.original, "input_quantizer", None)
        if quantizer is not None and hasattr(quantizer, "integer"):
            codes, step = quantizer.integer(x)  # the module's own activation grid
            return codes.to(torch.float64), step.to(torch.float64)
        ib = self.config.input_bits or DEFAULT_QUANT_BITS
        xd = x.detach().to(torch.float64)
        signed = xd.numel() > 0 and float(xd.min()) < 0
        lo, hi = (-(1 << (ib - 1)) + 1, (1 << (ib - 1)) - 1) if signed else (0, (1 << ib) - 1)
        return quantize_symmetric(xd, lo, hi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        traced = self.log.record(self.layer_name, self.original, x)
        if traced is None:
            self.log.check(self.layer_name)
            raise UnsupportedLayerError(f"layer {self.layer_name!r}: cannot be simulated")
        x_int, x_scale = self._integer_input(x)
        scale = self.w_scale * x_scale
        if self.mode == "layer-adc":
            linear = isinstance(self.original, nn.Linear)
            out = self._analog(traced.layer).run(x_int, "linear" if linear else "conv")
            y = (out * (scale if linear else scale[:, None, None])).to(x.dtype)
            return y if self.original.bias is None else y + (
                self.original.bias.detach() if linear else self.original.bias.detach()[:, None, None])
        sim = self._sim(traced.layer)
        if isinstance(self.original, nn.Linear):
            # (N, ..., F): the T = prod(...) positions are the layer's T x 1 map (see the tracer).
            lead = x_int.shape[:-1]
            n = x_int.shape[0] if x_int.dim() > 1 else 1
            positions = traced.layer.H
            xs = x_int.reshape(n, positions, x_int.shape[-1])
            res = sim.run(xs[:, 0] if positions == 1 else xs.permute(0, 2, 1)[..., None])
            out = res.output if positions == 1 else res.output[..., 0].permute(0, 2, 1)
            y = (out * scale).to(x.dtype).reshape(*lead, -1)
        else:
            res = sim.run(x_int)
            y = (res.output * scale[:, None, None]).to(x.dtype)
        self.counters = self.counters + res.counters
        if self.original.bias is not None:
            b = self.original.bias.detach()
            y = y + (b if isinstance(self.original, nn.Linear) else b[:, None, None])
        return y


# A wrapped model's call log and hook handles (kept outside the user's module).
_WRAPPED: weakref.WeakKeyDictionary[nn.Module, tuple[CallLog, list[Any]]] = weakref.WeakKeyDictionary()


def wrap_model(model: nn.Module, array: ArraySpec, method: str = "vwsdk",
               options: MappingOptions | None = None, config: SimConfig | None = None,
               mode: str = "crossbar") -> nn.Module:
    """Replace every Conv2d and Linear of ``model`` (in place) by a :class:`SimulatedLayer`
    (``mode``: ``"crossbar"`` or ``"layer-adc"``, see the module doc).

    A module that owns a weight matrix but is not a Conv2d/Linear (Conv1d, ConvTranspose2d, an RNN,
    ...) cannot run on crossbars: every such module a forward pass calls is named in one
    :class:`~imcflow.errors.UnsupportedLayerError` at the end of that pass, as the tracer does.
    """
    check_type("model", model, nn.Module)
    if model in _WRAPPED:
        raise UnsupportedLayerError("wrap_model: the model is already wrapped; unwrap_model() it first")
    check_type("array", array, ArraySpec, hint="build one with parse_array('64x64') or ArraySpec(64, 64)")
    options = check_type("options", options, MappingOptions) if options is not None else MappingOptions()
    config = check_type("config", config, SimConfig) if config is not None else SimConfig()
    config.check_array(array)
    log = CallLog()
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    others = [(n, m) for n, m in model.named_modules()
              if not isinstance(m, WEIGHT_LAYER_TYPES) and owns_weight_tensor(m)]
    for name, module in targets:
        _set_module(model, name, SimulatedLayer(module, name, array, method, options, config, log, mode))
    handles: list[Any] = [model.register_forward_pre_hook(lambda m, args: log.reset())]
    for name, module in others:
        handles.append(module.register_forward_hook(
            lambda m, args, out, name=name: log.unsupported_call(name, m)))
    handles.append(model.register_forward_hook(
        lambda m, args, out: log.check(type(m).__name__) if log.unsupported else None))
    _WRAPPED[model] = (log, handles)
    return model


def simulated_layers(model: nn.Module) -> list[TracedLayer]:
    """The layer records the simulated layers of a wrapped ``model`` used in its last forward pass, in
    call order (the same list :func:`imcflow.frontends.torch_trace.trace_layers` gives for that input)."""
    if model not in _WRAPPED:
        raise UnsupportedLayerError("simulated_layers: the model is not wrapped (wrap_model)")
    return list(_WRAPPED[model][0].records)


def unwrap_model(model: nn.Module) -> nn.Module:
    """Put the original layers back (inverse of :func:`wrap_model`)."""
    _, handles = _WRAPPED.pop(model, (None, []))
    for h in handles:
        h.remove()
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
                 config: SimConfig | None = None, mode: str = "crossbar") -> Iterator[nn.Module]:
    """``with on_crossbars(model, array) as m:`` runs ``m`` on simulated crossbars, then restores it."""
    wrap_model(model, array, method, options, config, mode)
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
