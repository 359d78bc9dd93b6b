"""Weight and activation quantizers as nn.Modules, trained with a straight-through estimator (STE).

This module owns the quantization arithmetic. Every weight quantizer maps a float weight ``w`` to
``w_q = scale * q`` with integer ``q``, and exposes that split through ``integer(w) -> (q, scale)``, so
what a crossbar stores (``q``) and what the float forward uses (``w_q``) can never disagree:
``forward(w) == q * scale`` exactly. Gradients pass through the rounding unchanged (STE:
``d round(x) / dx := 1``); scales are treated as constants in the backward pass.

=========== =========================================================================================
name        levels (b bits)
=========== =========================================================================================
uniform     symmetric, per output channel: ``scale = max|w_c| / (2^(b-1) - 1)``,
            ``q = round(w / scale)`` in ``[-(2^(b-1)-1), 2^(b-1)-1]`` (zero is a level). b >= 2.
dorefa      the DoReFa-style quantizer of the VW-SDK authors' code (compression.md, group
            conventions): ``t = tanh(w)``, ``u = t / (2 max|t|) + 1/2`` in [0, 1],
            ``u_q = round(u (2^b - 1)) / (2^b - 1)``, ``w_q = (2 u_q - 1) * mean|w|``. Its 2^b levels
            are the odd integers ``q in {-(2^b-1), ..., -1, 1, ..., 2^b-1}`` times
            ``mean|w| / (2^b - 1)``: there is **no zero level**, hence masks after quantization.
pow2        shift-only scale (compression.md D): ``w = 2^-n * q`` with integer ``n`` per tensor (or per
            channel), the largest ``n`` with ``max|w| <= (2^(b-1)-1) * 2^-n``; q as for uniform.
=========== =========================================================================================

Activations: :class:`ClampedUniformActivation` clamps to ``[0, clip]`` and rounds to ``2^b - 1`` steps.

Worked example (uniform, 3 bits, one channel ``w = [0.7, -0.2, 0.1]``): qmax = 3, scale = 0.7/3,
``w / scale = [3, -0.857, 0.429]`` -> ``q = [3, -1, 0]``, ``w_q = [0.7, -0.2333, 0]``.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from imcflow.errors import ConfigError, check_int
from imcflow.registry import Registry

_EPS = 1e-12


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` in the forward pass, identity in the backward pass (ties to even, as torch)."""
    return x + (torch.round(x) - x).detach()


def _per_channel_absmax(w: torch.Tensor, per_channel: bool) -> torch.Tensor:
    if per_channel and w.dim() > 1:
        return w.detach().abs().flatten(1).amax(1).view(-1, *([1] * (w.dim() - 1)))
    return w.detach().abs().amax()


class WeightQuantizer(nn.Module):
    """Base: ``forward(w) = scale * q`` with STE; subclasses define :meth:`integer`."""

    bits: int

    def integer(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The integer weights (int32) and the scale that multiplies them (broadcastable)."""
        raise NotImplementedError

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def levels(self) -> int:
        """How many distinct integer values ``q`` can take."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class UniformSymmetricWeight(WeightQuantizer):
    """Uniform symmetric quantizer, per output channel by default (``per_channel=False``: per tensor)."""

    scheme = "uniform"

    def __init__(self, bits: int, per_channel: bool = True):
        super().__init__()
        self.bits = check_int("bits", bits, 2, 16, where=f"{self.scheme} weight quantizer")
        self.per_channel = per_channel
        self.qmax = 2 ** (self.bits - 1) - 1

    def _scale(self, w: torch.Tensor) -> torch.Tensor:
        return _per_channel_absmax(w, self.per_channel).clamp_min(_EPS) / self.qmax

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scale = self._scale(w)
        return round_ste(w / scale).clamp(-self.qmax, self.qmax) * scale

    def integer(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self._scale(w)
        return torch.round(w.detach() / scale).clamp(-self.qmax, self.qmax).to(torch.int32), scale

    def levels(self) -> int:
        return 2 * self.qmax + 1

    def extra_repr(self) -> str:
        return f"bits={self.bits}, per_channel={self.per_channel}"


class DoReFaWeight(WeightQuantizer):
    """DoReFa-style k-bit weights times mean|w| (per tensor), as in the VW-SDK authors' code."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = check_int("bits", bits, 1, 16, where="dorefa weight quantizer")
        self.steps = 2 ** self.bits - 1

    def _unit(self, w: torch.Tensor) -> torch.Tensor:
        t = torch.tanh(w)
        return t / (2 * t.detach().abs().max().clamp_min(_EPS)) + 0.5  # in [0, 1]

    def _scale(self, w: torch.Tensor) -> torch.Tensor:
        return w.detach().abs().mean() / self.steps

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        u_q = round_ste(self._unit(w) * self.steps)  # integer in [0, steps]
        return (2 * u_q - self.steps) * self._scale(w)

    def integer(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u_q = torch.round(self._unit(w.detach()) * self.steps)
        return (2 * u_q - self.steps).to(torch.int32), self._scale(w)

    def levels(self) -> int:
        return self.steps + 1


class PowerOfTwoWeight(UniformSymmetricWeight):
    """Symmetric b-bit weights with a power-of-two scale ``2^-n`` (per tensor or per channel): the
    uniform quantizer with its scale rounded to a shift."""

    scheme = "pow2"

    def __init__(self, bits: int, per_channel: bool = False):
        super().__init__(bits, per_channel)

    def shift(self, w: torch.Tensor) -> torch.Tensor:
        """The integer n (per channel or scalar) of ``scale = 2^-n``: the finest scale that still
        represents max|w| without clipping, ``n = floor(log2(qmax / max|w|))``."""
        absmax = _per_channel_absmax(w, self.per_channel).clamp_min(_EPS)
        return torch.floor(torch.log2(self.qmax / absmax))

    def _scale(self, w: torch.Tensor) -> torch.Tensor:
        return torch.exp2(-self.shift(w))


class ClampedUniformActivation(nn.Module):
    """Unsigned activation quantizer: ``clamp(x, 0, clip)`` on ``2^b - 1`` uniform steps.

    The STE passes gradients where ``0 < x < clip`` and blocks them outside (the clamp's own
    gradient). With ``learn_clip=True`` the clip is a parameter (PACT-style; its gradient is that of
    the clamp through the STE). Example (2 bits, clip 1): 0.2 -> 1/3, 0.5 -> 2/3 (round half to
    even: 1.5 -> 2), 1.7 -> 1.
    """

    def __init__(self, bits: int, clip: float = 1.0, learn_clip: bool = False):
        super().__init__()
        self.bits = check_int("bits", bits, 1, 16, where="activation quantizer")
        if not clip > 0:
            raise ConfigError(f"activation quantizer: clip must be > 0, got {clip!r}")
        self.steps = 2 ** self.bits - 1
        value = torch.tensor(float(clip))
        if learn_clip:
            self.clip = nn.Parameter(value)
        else:
            self.register_buffer("clip", value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clip = self.clip
        y = torch.minimum(torch.relu(x), clip)
        step = clip / self.steps
        return round_ste(y / step) * step

    @torch.no_grad()
    def integer(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The integer codes in ``[0, 2^b - 1]`` (float, integer-valued) and the step that multiplies
        them: ``forward(x) == codes * step`` exactly (the same divisions and rounding).

        >>> ClampedUniformActivation(2).integer(torch.tensor([0.2, 0.5, 1.7]))[0].tolist()
        [1.0, 2.0, 3.0]
        """
        clip = self.clip.detach()
        step = clip / self.steps
        return torch.round(torch.minimum(torch.relu(x.detach()), clip) / step), step

    def extra_repr(self) -> str:
        return f"bits={self.bits}, clip={float(self.clip):g}"


# name -> factory(bits, **options): the weight quantizer registry (the one list of quantizer names).
WEIGHT_QUANTIZERS: Registry[Callable[..., WeightQuantizer]] = Registry("weight quantization scheme")
WEIGHT_QUANTIZERS.register("uniform", UniformSymmetricWeight)
WEIGHT_QUANTIZERS.register("dorefa", DoReFaWeight)
WEIGHT_QUANTIZERS.register("pow2", PowerOfTwoWeight)


#: The ``--quant`` value for float (unquantized) weights.
NO_QUANTIZATION = "none"


def quant_scheme_names() -> list[str]:
    """Every value ``--quant`` accepts: the registered weight quantizers, then ``none`` (float)."""
    return [*WEIGHT_QUANTIZERS.names(), NO_QUANTIZATION]


def weight_quantizer(scheme: str, bits: int, **options) -> WeightQuantizer:
    """Build a weight quantizer by registry name (``uniform``, ``dorefa``, ``pow2``)."""
    return WEIGHT_QUANTIZERS.get(scheme)(bits, **options)


def is_power_of_two(x: torch.Tensor) -> bool:
    """True when every entry is an exact power of two (mantissa 0.5 in frexp terms)."""
    mantissa, _ = torch.frexp(x.double())
    return bool(torch.all(mantissa == 0.5))


__all__ = ["ClampedUniformActivation", "DoReFaWeight", "NO_QUANTIZATION", "PowerOfTwoWeight",
           "UniformSymmetricWeight", "WEIGHT_QUANTIZERS", "WeightQuantizer", "is_power_of_two",
           "quant_scheme_names", "round_ste", "weight_quantizer"]
