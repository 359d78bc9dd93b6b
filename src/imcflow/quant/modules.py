"""Quantized conv and linear layers with an optional pruning mask applied after quantization.

This module owns :class:`QuantConv2d` / :class:`QuantLinear`, :func:`quantize_model` and **the stored
weights**: :func:`stored_weights` (a :class:`StoredWeights`: integers, scale, mask) is the one place
every consumer reads the integers a crossbar holds for a layer (deployment and its cost, the crossbar
simulator's model wrapper, and NeuroSim traces through :func:`imcflow.sim.wrapper.crossbar_weights`),
so the simulated network is the trained one.
The layers subclass ``nn.Conv2d`` / ``nn.Linear`` (so tracing, mapping and ``isinstance`` checks keep
working) and in ``forward`` use the *deployed* weight::

    w_deployed = weight_quantizer(weight) * weight_mask        # mask last: pruned stays exactly 0

Masking after quantization matters because some quantizers have no zero level (DoReFa with any bit
width maps 0 to +-mean|w|/(2^b-1)); masking before would let pruned weights come back. The mask is a
buffer (saved in ``state_dict``), ``None`` when absent. An optional ``input_quantizer`` quantizes the
layer's input activation.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from imcflow.errors import ConfigError
from imcflow.quant.quantizers import ClampedUniformActivation, WeightQuantizer, weight_quantizer


@dataclass(frozen=True)
class StoredWeights:
    """The integers a crossbar stores for one layer and how they map back to its float weight.

    ``integers``: int32 of the weight's shape, pruned entries exactly 0. ``scale``: float, broadcastable
    to the weight (one value per output channel, or one for the tensor), so that ``integers * scale``
    is the weight the layer's forward pass uses. ``mask``: the 0/1 pruning mask, None when dense.
    ``bits``: the quantizer's bit width. Worked example (uniform, 3 bits, one channel
    ``w = [0.7, -0.2, 0.1]``): integers ``[3, -1, 0]``, scale ``0.7/3``.
    """

    integers: torch.Tensor
    scale: torch.Tensor
    mask: torch.Tensor | None
    bits: int

    def channel_scale(self) -> torch.Tensor:
        """The scale of each output channel, shape ``(out_channels,)``."""
        oc = self.integers.shape[0]
        s = self.scale.reshape(-1)
        return s.expand(oc) if s.numel() == 1 else s

    def dequantized(self) -> torch.Tensor:
        """``integers * scale``: the float weight the layer's forward pass uses."""
        return self.integers * self.scale


def is_quantized(module: nn.Module) -> bool:
    """True when ``module`` quantizes its weight (an imcflow quantized layer with a weight quantizer)."""
    return isinstance(module, _QuantMixin) and module.weight_quantizer is not None


class _QuantMixin(nn.Module):
    weight: torch.Tensor
    weight_quantizer: WeightQuantizer | None
    input_quantizer: nn.Module | None
    weight_mask: torch.Tensor | None

    def _init_quant(self, weight_quantizer: WeightQuantizer | None, input_quantizer: nn.Module | None,
                    mask: torch.Tensor | None) -> None:
        self.weight_quantizer = weight_quantizer
        self.input_quantizer = input_quantizer
        self.register_buffer("weight_mask", None)
        if mask is not None:
            self.set_mask(mask)

    def set_mask(self, mask: torch.Tensor | None) -> None:
        """Install (or with None remove) a 0/1 mask of the weight's shape."""
        if mask is None:
            self.weight_mask = None
            return
        if tuple(mask.shape) != tuple(self.weight.shape):
            raise ConfigError(f"mask shape {tuple(mask.shape)} does not match weight shape "
                              f"{tuple(self.weight.shape)}")
        self.weight_mask = (mask != 0).to(dtype=self.weight.dtype, device=self.weight.device)

    def deployed_weight(self) -> torch.Tensor:
        """The weight the forward pass uses: quantized, then masked."""
        w = self.weight_quantizer(self.weight) if self.weight_quantizer is not None else self.weight
        mask = self._checked_mask()
        return w if mask is None else w * mask

    def _checked_mask(self) -> torch.Tensor | None:
        if self.weight_mask is not None and self.weight_mask.shape != self.weight.shape:
            # Channel pruning (e.g. Torch-Pruning) resizes the weight but not this buffer.
            raise ConfigError(f"{type(self).__name__}: mask shape {tuple(self.weight_mask.shape)} no "
                              f"longer matches weight shape {tuple(self.weight.shape)}; slice or re-set "
                              "the mask (set_mask) after removing channels")
        return self.weight_mask

    @torch.no_grad()
    def stored_weights(self) -> StoredWeights:
        """The integers this layer's crossbars hold (quantized, then masked), their scale and mask."""
        if self.weight_quantizer is None:
            raise ConfigError(f"{type(self).__name__} has no weight quantizer, so it stores no integers; "
                              "call quantize_model() first")
        q, scale = self.weight_quantizer.integer(self.weight)
        mask = self._checked_mask()
        if mask is not None:
            q = q * mask.to(torch.int32)
        return StoredWeights(q, scale, mask, self.weight_quantizer.bits)

    def _quant_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_quantizer(x) if self.input_quantizer is not None else x

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A mask saved in the state dict must be accepted even when this module has none yet.
        key = prefix + "weight_mask"
        if key in state_dict and self.weight_mask is None and state_dict[key] is not None:
            self.weight_mask = torch.ones_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class QuantConv2d(_QuantMixin, nn.Conv2d):
    """``nn.Conv2d`` whose forward uses :meth:`deployed_weight` (quantize, then mask)."""

    def __init__(self, *args, weight_quantizer: WeightQuantizer | None = None,
                 input_quantizer: nn.Module | None = None, mask: torch.Tensor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_quant(weight_quantizer, input_quantizer, mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self._quant_input(x), self.deployed_weight(), self.bias)


class QuantLinear(_QuantMixin, nn.Linear):
    """``nn.Linear`` whose forward uses :meth:`deployed_weight` (quantize, then mask)."""

    def __init__(self, *args, weight_quantizer: WeightQuantizer | None = None,
                 input_quantizer: nn.Module | None = None, mask: torch.Tensor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_quant(weight_quantizer, input_quantizer, mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(self._quant_input(x), self.deployed_weight(), self.bias)


def _clone_as_quant(module: nn.Conv2d | nn.Linear, wq: WeightQuantizer | None,
                    iq: nn.Module | None) -> nn.Module:
    if isinstance(module, nn.Conv2d):
        new: QuantConv2d | QuantLinear
        new = QuantConv2d(module.in_channels, module.out_channels, module.kernel_size,
                                     stride=module.stride, padding=module.padding, dilation=module.dilation,
                                     groups=module.groups, bias=module.bias is not None,
                                     padding_mode=module.padding_mode, weight_quantizer=wq,
                                     input_quantizer=iq)
    else:
        new = QuantLinear(module.in_features, module.out_features, bias=module.bias is not None,
                          weight_quantizer=wq, input_quantizer=iq)
    new.to(device=module.weight.device, dtype=module.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(module.weight)
        if module.bias is not None and new.bias is not None:
            new.bias.copy_(module.bias)
    return new


def quantize_model(model: nn.Module, weight_bits: int, act_bits: int | None = None,
                   scheme: str = "uniform", skip: Iterable[str] | Callable[[str, nn.Module], bool] = (),
                   act_clip: float = 1.0, quantize_first_input: bool = False) -> nn.Module:
    """Replace every ``nn.Conv2d``/``nn.Linear`` of ``model`` (in place) by a quantized copy.

    ``scheme`` picks the weight quantizer (``uniform``, ``dorefa``, ``pow2``); ``act_bits`` adds a
    :class:`ClampedUniformActivation` on each layer's input, except the first layer's (its input is
    the signed, normalised image) unless ``quantize_first_input``. ``skip`` names layers to leave
    dense (qualified names as in ``named_modules``) or is a predicate ``(name, module) -> bool``.
    Layers that are already quantized get a new quantizer. Returns ``model``.
    """
    should_skip = skip if callable(skip) else (lambda name, m, s=frozenset(skip): name in s)
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not targets:
        raise ConfigError("quantize_model: the model has no Conv2d or Linear layer")
    first = targets[0][0]
    for name, module in targets:
        if should_skip(name, module):
            continue
        wq = weight_quantizer(scheme, weight_bits)
        iq = (ClampedUniformActivation(act_bits, act_clip)
              if act_bits is not None and (name != first or quantize_first_input) else None)
        if isinstance(module, (QuantConv2d, QuantLinear)):
            module.weight_quantizer, module.input_quantizer = wq, iq
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, _clone_as_quant(module, wq, iq))
    return model


def masked_float_weight(module: nn.Conv2d | nn.Linear) -> torch.Tensor:
    """The float weight a plain (not quantized) Conv2d/Linear computes with: ``module.weight`` times a
    ``weight_mask`` buffer kept beside it (``torch.nn.utils.prune`` masks are already in ``weight``)."""
    w = module.weight.detach()
    mask = getattr(module, "weight_mask", None)
    if torch.is_tensor(mask) and mask.shape == w.shape and not hasattr(module, "weight_orig"):
        w = w * mask
    return w


@torch.no_grad()
def stored_weights(module: nn.Module, float_qmax: int | None = None) -> StoredWeights:
    """What a crossbar stores for ``module``: the one source of stored weights.

    A quantized layer (:class:`QuantConv2d`/:class:`QuantLinear` with a weight quantizer) returns its
    own integers, scale and mask, the ones its forward pass uses. A plain float layer stores no integers
    of its own; with ``float_qmax`` it is quantized here, symmetric per tensor to
    ``[-float_qmax, float_qmax]`` (in float64: ``scale = max|w| / float_qmax``), which is how the
    simulator runs a float model; without it a float layer is an error.

    >>> conv = QuantConv2d(1, 1, (1, 3), bias=False, weight_quantizer=weight_quantizer("uniform", 3))
    >>> _ = conv.weight.data.copy_(torch.tensor([[[[0.7, -0.2, 0.1]]]]))
    >>> stored_weights(conv).integers.flatten().tolist()
    [3, -1, 0]
    """
    if isinstance(module, _QuantMixin) and module.weight_quantizer is not None:
        return module.stored_weights()
    if float_qmax is None or not isinstance(module, (nn.Conv2d, nn.Linear)):
        raise ConfigError(f"{type(module).__name__} has no weight quantizer, so it stores no integers; "
                          "call quantize_model() first, or give float_qmax to quantize a Conv2d/Linear "
                          "per tensor")
    w = masked_float_weight(module).to(torch.float64)
    top = float(w.abs().max()) if w.numel() else 0.0
    scale = top / float_qmax if top > 0 else 1.0
    q = torch.clamp(torch.round(w / scale), -float_qmax, float_qmax).to(torch.int32)
    return StoredWeights(q, torch.tensor(scale, dtype=torch.float64), None,
                         max(1, int(float_qmax).bit_length() + 1))


def integer_weights(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(integers, scale)`` of :func:`stored_weights` for a quantized layer (kept for callers that
    want the pair): ``q * scale == module.deployed_weight()``, pruned entries exactly 0."""
    stored = stored_weights(module)
    return stored.integers, stored.scale
