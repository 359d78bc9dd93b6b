"""Batch-norm folding and integer-only (shift-only) inference of a conv layer (compression.md D).

This module owns two steps of deploying a conv + batch norm without multipliers:

1. :func:`fold_batchnorm`: ``BN(conv(x))`` in eval mode equals one conv with weight
   ``w * g`` and bias ``beta + (b - mu) * g`` where ``g = gamma / sqrt(var + eps)`` per output channel.
2. :func:`integerize_conv`: the folded weight becomes ``2^-n * q`` (power-of-two scale,
   :class:`~imcflow.quant.quantizers.PowerOfTwoWeight`). With an input activation ``a = 2^-m_in * x``
   (integer ``x``) and an output scale ``2^-m_out``, the accumulator ``acc = sum q * x`` (integers) has
   scale ``2^-(n + m_in)``; the bias is stored as the integer ``round(b * 2^(n + m_in))`` in that
   scale, and the output integer is ``(acc + bias + 2^(s-1)) >> s`` with ``s = n + m_in - m_out``
   (round half up; a left shift when ``s <= 0``). No multiplier and no float anywhere in
   :meth:`IntegerConv.forward`.

Worked example: q = 3, n = 2 (w = 0.75), x = 5, m_in = 1 (a = 2.5), bias 0, m_out = 1: acc = 15 at scale
2^-3, s = 2, (15 + 2) >> 2 = 4, i.e. 2.0 = round-half-up of 0.75 * 2.5 = 1.875 to the 0.5 grid.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from imcflow.errors import ConfigError, check_int
from imcflow.quant.quantizers import PowerOfTwoWeight


@torch.no_grad()
def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new ``nn.Conv2d`` (with bias) equal to ``bn(conv(x))`` with ``bn`` in eval mode."""
    if bn.num_features != conv.out_channels:
        raise ConfigError(f"fold_batchnorm: batch norm has {bn.num_features} channels, the conv "
                          f"{conv.out_channels} output channels")
    if bn.running_mean is None or bn.running_var is None:
        raise ConfigError("fold_batchnorm: batch norm without running statistics cannot be folded")
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_mean)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    g = gamma / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    # torch types a Conv2d's geometry as tuple[int, ...]; it holds two entries.
    pair = cast("tuple[int, int]", conv.kernel_size)
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, pair, stride=cast("tuple[int, int]", conv.stride),
                       padding=cast("str | tuple[int, int]", conv.padding),
                       dilation=cast("tuple[int, int]", conv.dilation), groups=conv.groups, bias=True,
                       padding_mode=conv.padding_mode).to(conv.weight.device, conv.weight.dtype)
    folded.weight.copy_(conv.weight * g.view(-1, 1, 1, 1))
    cast(torch.Tensor, folded.bias).copy_(beta + (bias - bn.running_mean) * g)
    return folded


def _round_shift(acc: torch.Tensor, s: int) -> torch.Tensor:
    """``round_half_up(acc / 2^s)`` for integer tensors using shifts only."""
    if s <= 0:
        return acc << (-s)
    return (acc + (1 << (s - 1))) >> s


@dataclass(frozen=True)
class IntegerConv:
    """A conv layer for integer-only inference: weights ``q`` (int64), weight shift ``n``
    (scale ``2^-n``), bias in accumulator units, input shift ``m_in`` and output shift ``m_out``."""

    q: torch.Tensor
    n: int
    bias: torch.Tensor
    m_in: int
    m_out: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    relu: bool = False

    @property
    def shift(self) -> int:
        """The one rescale of this layer: a right shift by ``n + m_in - m_out``."""
        return self.n + self.m_in - self.m_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Integer input (scale ``2^-m_in``) -> integer output (scale ``2^-m_out``)."""
        if x.dtype.is_floating_point:
            raise ConfigError("IntegerConv.forward takes an integer tensor")
        # conv2d has no integer kernel on CPU; float64 represents every partial sum exactly as long as
        # |acc| < 2^53, which the check below guarantees, so this is the integer convolution.
        bound = int(x.abs().max()) * int(self.q.abs().flatten(1).sum(1).max())
        if bound >= 2 ** 53:
            raise ConfigError(f"IntegerConv: accumulator bound {bound} exceeds 2^53")
        acc = nn.functional.conv2d(x.double(), self.q.double(), None, self.stride, self.padding,
                                   self.dilation, self.groups).round().long()
        out = _round_shift(acc + self.bias.view(1, -1, 1, 1), self.shift)
        return out.clamp_min(0) if self.relu else out

    __call__ = forward


@torch.no_grad()
def integerize_conv(conv: nn.Conv2d, weight_bits: int, m_in: int, m_out: int,
                    bn: nn.BatchNorm2d | None = None, relu: bool = False) -> IntegerConv:
    """Fold ``bn`` (if given) into ``conv`` and quantize to power-of-two scaled integers.

    ``m_in``/``m_out`` are the fractional bits of the input and output activations (scales
    ``2^-m_in``, ``2^-m_out``). The weight shift is per tensor so the layer needs one shift.
    """
    check_int("weight_bits", weight_bits, 2, 16)
    layer = fold_batchnorm(conv, bn) if bn is not None else conv
    quantizer = PowerOfTwoWeight(weight_bits, per_channel=False)
    n = int(quantizer.shift(layer.weight))
    q, _ = quantizer.integer(layer.weight)
    b = layer.bias if layer.bias is not None else torch.zeros(layer.out_channels)
    bias = torch.round(b.double() * 2.0 ** (n + m_in)).long()
    two = cast("tuple[int, int]", tuple(layer.stride)), cast("tuple[int, int]", tuple(layer.padding))
    return IntegerConv(q.long(), n, bias, int(m_in), int(m_out), two[0], two[1],
                       cast("tuple[int, int]", tuple(layer.dilation)), layer.groups, relu)
