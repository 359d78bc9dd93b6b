"""The per-layer analog model that IBM aihwkit's tiles assume, for side-by-side comparison.

aihwkit (``AnalogConv2d`` / ``AnalogLinear`` with an inference RPU config) models a layer as one
analog matrix-vector product per input vector: the input goes through a DAC, the full-precision analog
sum of the *whole* layer is formed on one (virtual) tile, output noise is added, and one ADC reads each
output column once. It has no weight bit slicing, no bit-serial input steps, no row tiles and no
mapping. :class:`LayerAdcModel` computes exactly that from the same integer weights, integer inputs and
:class:`~imcflow.sim.effects.SimConfig` as the crossbar simulator, so the two sets of assumptions can be
compared on the same network (``wrap_model(..., mode="layer-adc")``):

* input DAC: the wrapper's integer inputs (``input_bits``, default 8) are the DAC codes, applied at
  once (not bit-serially);
* weights: one signed analog weight per integer weight (no slicing, no offset or differential
  columns); device noise: ``w * (1 + sigma * N(0, 1))`` per weight, stuck-off weights 0, stuck-on
  weights at the largest ``|w|`` with the weight's sign, drawn once (seeded per layer);
* output noise: ``read_sigma`` x N(0, 1) per output read, in weight units x input units (the integer
  domain, as the crossbar simulator's read noise), drawn per call;
* ADC: one conversion per output per window; ``lsb = full_scale / (2**(bits-1) - 1)`` (signed, not a
  power of two: the analog sum is not an integer), rounded half up and clipped. ``full_scale``:
  ``"max"`` = the largest ``sum |w| x max input`` over output channels (never clips), ``"calibrated"``
  = the largest ``|y|`` of the batch, or a number (in weight x input units).

Not modelled (aihwkit options): per-sample input scaling ("noise management"), output bound
management, IR drop, drift, per-MVM weight noise; aihwkit also splits layers wider than its
``max_input_size`` (512 by default) over several tiles, each with its own ADC read.

>>> import torch
>>> from imcflow.sim.effects import AdcSpec, SimConfig
>>> m = LayerAdcModel(torch.tensor([[1.0, -2.0]]), None, SimConfig(adc=AdcSpec(3, full_scale=6.0)))
>>> m.run(torch.tensor([[3.0, 1.0]]), "linear").tolist()   # 3 - 2 = 1, lsb 6/3 = 2: 0.5 -> 1 code -> 2
[[2.0]]
"""
from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F

from imcflow.layers import ConvLayer
from imcflow.sim.effects import SimConfig


class LayerAdcModel:
    """One layer as aihwkit models it (see the module doc); ``run`` takes integer inputs."""

    def __init__(self, weight: torch.Tensor, layer: ConvLayer | None, config: SimConfig,
                 name: str = "") -> None:
        self.layer, self.config = layer, config
        w0 = w = torch.as_tensor(weight).to(torch.float64)
        seed = config.seed * 1_000_003 + zlib.crc32(name.encode())
        noise = config.noise
        if noise is not None and noise.static:
            gen = torch.Generator().manual_seed(seed % (1 << 63))
            top = float(w.abs().max()) if w.numel() else 0.0
            if noise.sigma:
                w = w * (1 + noise.sigma * torch.randn(w.shape, generator=gen, dtype=torch.float64))
            if noise.stuck_on_rate or noise.stuck_off_rate:
                u = torch.rand(w.shape, generator=gen, dtype=torch.float64)
                w = torch.where(u < noise.stuck_off_rate, torch.zeros(()), w)
                on = (u >= noise.stuck_off_rate) & (u < noise.stuck_off_rate + noise.stuck_on_rate)
                w = torch.where(on, torch.sign(w0) * top, w)
        self.weight = w
        self._read_gen = torch.Generator().manual_seed((seed * 31 + 17) % (1 << 63))

    def run(self, x: torch.Tensor, kind: str = "conv") -> torch.Tensor:
        """Output (float64, weight x input units) of integer inputs ``x``: ``(N, IC, H, W)`` for a
        convolution, ``(N, IC)`` for ``kind="linear"``."""
        x = torch.as_tensor(x).to(torch.float64)
        w = self.weight
        if kind == "linear":
            y = x @ w.reshape(w.shape[0], -1).T
        else:
            lay = self.layer
            assert lay is not None, "a convolution needs its layer record"  # internal: the wrapper passes it
            y = F.conv2d(x, w, stride=lay.stride, padding=lay.padding, dilation=lay.dilation,
                         groups=lay.groups)
        noise = self.config.noise
        if noise is not None and noise.read_sigma:
            y = y + noise.read_sigma * torch.randn(y.shape, generator=self._read_gen, dtype=torch.float64)
        adc = self.config.adc
        if adc is None:
            return y
        if adc.full_scale == "max":
            per_col = w.abs().reshape(w.shape[0], -1).sum(dim=1)
            fs = float(per_col.max()) * (float(x.abs().max()) if x.numel() else 0.0)
        elif adc.full_scale == "calibrated":
            fs = float(y.abs().max()) if y.numel() else 0.0
        else:
            fs = float(adc.full_scale)
        top = (1 << (adc.bits - 1)) - 1
        if fs <= 0 or top <= 0:
            return torch.zeros_like(y) if top <= 0 else y
        lsb = fs / top
        q = y / lsb
        q = torch.floor(q + 0.5) if adc.rounding == "nearest" else torch.floor(q)
        return q.clamp_(-top - 1, top) * lsb
