"""Hardware non-idealities of the crossbar simulator, each off by default.

* **Weight bit slicing** (``weight_bits`` over ``cell_bits``): an integer weight is stored in
  ``S = ceil(weight_bits / cell_bits)`` cells of adjacent columns, slice ``j`` holding bits
  ``[j*cell_bits, (j+1)*cell_bits)``; the column outputs are recombined digitally with weights
  ``2**(j*cell_bits)`` (shift and add). Cells are conductances, so they hold non-negative levels; a
  signed weight uses one of two encodings (``signed``):

  - ``"offset"``: the cell stores ``w + 2**(weight_bits-1)`` (range ``[-2**(wb-1), 2**(wb-1)-1]``,
    the usual int quantization range); one extra reference column of cells at level 1 per tile
    measures the input sum, and ``2**(weight_bits-1) * sum(x)`` is subtracted digitally.
  - ``"differential"``: a positive and a negative copy of every column hold ``max(w, 0)`` and
    ``max(-w, 0)`` (range ``|w| <= 2**wb - 1``); the two are subtracted after conversion.

  ``weight_bits=None`` (default): one ideal cell holds the whole signed integer weight.
* **Bit-serial inputs** (``input_bits``): non-negative inputs in ``[0, 2**ib - 1]`` are applied one bit
  plane per step; a batch with negative inputs uses two's complement planes (range
  ``[-2**(ib-1), 2**(ib-1)-1]``) whose top plane is subtracted. Steps are recombined with ``2**k``.
  ``input_bits=None`` (default): the input value is applied in one step.
* **ADC** (:class:`AdcSpec`) on every column read of every step: ``code = clip(round(v / lsb))`` with
  ``lsb`` the smallest power of two >= 1 such that the code range covers the full scale. Column sums of
  integer data are integers, so an ADC whose code range covers the full scale is exact.
* **Device noise** (:class:`NoiseSpec`), drawn once when a layer is programmed (seeded):
  conductance ``g * (1 + sigma * N(0, 1))`` per cell, then stuck-at-off cells (0) and stuck-at-on cells
  (the highest level) at given rates, on every physical cell including zero-weight ones.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

from imcflow.errors import ConfigError, check_int
from imcflow.seeding import check_seed

SignedEncoding = Literal["offset", "differential"]
FullScale = Literal["max", "calibrated"]


@dataclass(frozen=True)
class AdcSpec:
    """One ADC per column read.

    ``bits``: resolution. ``full_scale``: ``"max"`` = the largest value the tile's columns can produce
    (highest cell level x highest input level x rows; never clips), ``"calibrated"`` = the largest
    magnitude observed in the data of the current call, per tile, or a number (the same for every
    tile; larger values clip). ``rounding``: ``"nearest"`` (half up) or ``"floor"``.

    >>> AdcSpec(3, full_scale=14.0).lsb(14.0, signed=False)   # 7 codes of width 2 cover 14
    2.0
    """

    bits: int
    full_scale: FullScale | float = "max"
    rounding: Literal["nearest", "floor"] = "nearest"

    def __post_init__(self) -> None:
        check_int("adc_bits", self.bits, 1, 32)
        if isinstance(self.full_scale, str):
            if self.full_scale not in ("max", "calibrated"):
                raise ConfigError(f"adc full_scale must be 'max', 'calibrated' or a positive number, "
                                  f"got {self.full_scale!r}")
        elif not (isinstance(self.full_scale, (int, float)) and self.full_scale > 0):
            raise ConfigError(f"adc full_scale must be 'max', 'calibrated' or a positive number, "
                              f"got {self.full_scale!r}")
        if self.rounding not in ("nearest", "floor"):
            raise ConfigError(f"adc rounding must be 'nearest' or 'floor', got {self.rounding!r}")

    def code_range(self, signed: bool) -> tuple[int, int]:
        if signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1

    def lsb(self, full_scale: float, signed: bool) -> float:
        """Smallest power of two >= 1 whose positive code range reaches ``full_scale``."""
        top = self.code_range(signed)[1]
        if top <= 0 or full_scale <= top:
            return 1.0
        return float(2 ** math.ceil(math.log2(full_scale / top)))

    def convert(self, v: torch.Tensor, full_scale: torch.Tensor, signed: bool) -> torch.Tensor:
        """Quantize column values ``v`` (last dim = columns) with per-column ``full_scale``."""
        top = self.code_range(signed)[1]
        ratio = torch.clamp(full_scale.to(torch.float64) / max(top, 1), min=1.0)
        lsb = torch.exp2(torch.ceil(torch.log2(ratio))).to(v.dtype)
        lo, hi = self.code_range(signed)
        q = v / lsb
        q = torch.floor(q + 0.5) if self.rounding == "nearest" else torch.floor(q)
        return torch.clamp(q, lo, hi) * lsb

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NoiseSpec:
    """Static device variation: relative Gaussian ``sigma`` per cell and stuck-at fault rates."""

    sigma: float = 0.0
    stuck_on_rate: float = 0.0
    stuck_off_rate: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.sigma, (int, float)) and self.sigma >= 0):
            raise ConfigError(f"noise sigma must be a number >= 0, got {self.sigma!r}")
        for name in ("stuck_on_rate", "stuck_off_rate"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v <= 1):
                raise ConfigError(f"noise {name} must be in [0, 1], got {v!r}")
        if self.stuck_on_rate + self.stuck_off_rate > 1:
            raise ConfigError(f"stuck_on_rate + stuck_off_rate must be <= 1, got "
                              f"{self.stuck_on_rate} + {self.stuck_off_rate}")

    @property
    def active(self) -> bool:
        return bool(self.sigma or self.stuck_on_rate or self.stuck_off_rate)

    def apply(self, g: torch.Tensor, top_level: float, gen: torch.Generator) -> torch.Tensor:
        """Perturb conductance levels ``g`` (any shape); ``top_level`` is the stuck-at-on level."""
        out = g
        if self.sigma:
            out = out * (1 + self.sigma * torch.randn(g.shape, generator=gen, dtype=g.dtype))
        if self.stuck_on_rate or self.stuck_off_rate:
            u = torch.rand(g.shape, generator=gen, dtype=torch.float64)
            out = torch.where(u < self.stuck_off_rate, torch.zeros((), dtype=g.dtype), out)
            on = (u >= self.stuck_off_rate) & (u < self.stuck_off_rate + self.stuck_on_rate)
            out = torch.where(on, torch.full((), top_level, dtype=g.dtype), out)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SimConfig:
    """Every hardware effect of the simulator; the default is the ideal (exact) crossbar.

    ``weight_bits``/``cell_bits``/``signed``: weight bit slicing. ``input_bits``: bit-serial inputs.
    ``adc``: column converters (None = ideal). ``noise``: device variation (None = none). ``seed``:
    seeds the noise draw of every layer (mixed with the layer name, so layers differ).
    """

    weight_bits: int | None = None
    cell_bits: int = 1
    signed: SignedEncoding = "offset"
    input_bits: int | None = None
    adc: AdcSpec | None = None
    noise: NoiseSpec | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.weight_bits is not None:
            check_int("weight_bits", self.weight_bits, 1, 32)
        check_int("cell_bits", self.cell_bits, 1, 16)
        if self.input_bits is not None:
            check_int("input_bits", self.input_bits, 1, 32)
        if self.signed not in ("offset", "differential"):
            raise ConfigError(f"signed must be 'offset' or 'differential', got {self.signed!r}")
        check_seed(self.seed)

    @property
    def weight_slices(self) -> int:
        return 1 if self.weight_bits is None else math.ceil(self.weight_bits / self.cell_bits)

    @property
    def exact(self) -> bool:
        """True when nothing but ideal arithmetic is configured (ADC and noise off)."""
        return self.adc is None and (self.noise is None or not self.noise.active)

    def weight_range(self) -> tuple[int, int] | None:
        """Integer weights the configured cells can hold, or None (ideal cells hold any integer)."""
        if self.weight_bits is None:
            return None
        wb = self.weight_bits
        if self.signed == "offset":
            return -(1 << (wb - 1)), (1 << (wb - 1)) - 1
        return -((1 << wb) - 1), (1 << wb) - 1

    def to_dict(self) -> dict[str, Any]:
        return {"weight_bits": self.weight_bits, "cell_bits": self.cell_bits, "signed": self.signed,
                "input_bits": self.input_bits, "adc": self.adc.to_dict() if self.adc else None,
                "noise": self.noise.to_dict() if self.noise else None, "seed": self.seed}


# ---------------------------------------------------------------------------------------------------
# Encodings used by the executor.


@dataclass(frozen=True)
class WeightEncoding:
    """How one weight column becomes physical columns: ``cells(w)`` -> ``(..., parts*slices)`` levels,
    the digital coefficient of each physical column, and whether a reference (offset) column exists."""

    slices: int
    cell_bits: int | None
    parts: int  # 2 for a differential pair, else 1
    offset: int  # value subtracted per unit of input sum (offset encoding), else 0
    top_level: float  # highest cell level (stuck-at-on)

    @property
    def columns_per_weight(self) -> int:
        return self.parts * self.slices

    def coefficients(self) -> torch.Tensor:
        """Digital weight of each physical column of one weight (part-major, then slice)."""
        shift = torch.ones(1, dtype=torch.float64) if self.cell_bits is None else \
            torch.tensor([float(1 << (j * self.cell_bits)) for j in range(self.slices)], dtype=torch.float64)
        sign = torch.tensor([1.0, -1.0][: self.parts], dtype=torch.float64)
        return (sign[:, None] * shift[None, :]).reshape(-1)

    def cells(self, w: torch.Tensor) -> torch.Tensor:
        """Cell levels ``(..., parts*slices)`` for integer weights ``w`` (float64)."""
        if self.cell_bits is None:
            return w[..., None]
        parts = [w + self.offset] if self.parts == 1 else [torch.clamp(w, min=0), torch.clamp(-w, min=0)]
        base = 1 << self.cell_bits
        out: list[torch.Tensor] = []
        for p in parts:
            p = p.to(torch.int64)
            out.extend(((p >> (j * self.cell_bits)) % base) for j in range(self.slices))
        return torch.stack(out, dim=-1).to(torch.float64)


def weight_encoding(config: SimConfig, weights: torch.Tensor, where: str) -> WeightEncoding:
    """Validate integer weights against the configured cells and return their encoding."""
    if not torch.equal(weights, torch.round(weights)):
        raise ConfigError(f"{where}: the simulator takes integer weights; quantize them first "
                          f"(imcflow.sim.wrapper does this for models)")
    rng = config.weight_range()
    if rng is None:
        top = float(weights.abs().max()) if weights.numel() else 0.0
        return WeightEncoding(1, None, 1, 0, top)
    lo, hi = rng
    wmin, wmax = (float(weights.min()), float(weights.max())) if weights.numel() else (0.0, 0.0)
    if wmin < lo or wmax > hi:
        raise ConfigError(f"{where}: weights span [{wmin:g}, {wmax:g}], outside the {config.weight_bits}-bit "
                          f"{config.signed} range [{lo}, {hi}]")
    parts = 2 if config.signed == "differential" else 1
    offset = (1 << (config.weight_bits - 1)) if config.signed == "offset" else 0  # type: ignore[operator]
    return WeightEncoding(config.weight_slices, config.cell_bits, parts, offset,
                          float((1 << config.cell_bits) - 1))


# (integer type, largest bit count whose non-negative patterns it holds) for bit-plane extraction.
_PLANE_INT_TYPES = ((torch.uint8, 8), (torch.int16, 15), (torch.int32, 31), (torch.int64, 63))


@dataclass(frozen=True)
class InputEncoding:
    """Input steps: ``planes(x)`` -> ``(steps, ...)`` and each step's digital coefficient."""

    steps: int
    coefficients: tuple[float, ...]
    bits: int | None
    twos_complement: bool
    top_level: float  # largest |value| one step applies

    def planes(self, x: torch.Tensor) -> torch.Tensor:
        """``(steps, *x.shape)`` in ``x``'s dtype: bit ``k`` of every value in plane ``k``."""
        if self.bits is None:
            return x[None]
        # The narrowest integer type that holds every bit pattern: bit twiddling is memory bound.
        dt = next(d for d, width in _PLANE_INT_TYPES if self.bits <= width)
        xi = x.to(torch.int64 if self.twos_complement else dt)
        if self.twos_complement:
            xi = (xi & ((1 << self.bits) - 1)).to(dt)
        shifts = torch.arange(self.bits, dtype=dt).view(-1, *([1] * x.dim()))
        return ((xi[None] >> shifts) & 1).to(x.dtype)


def input_encoding(config: SimConfig, x: torch.Tensor, where: str) -> InputEncoding:
    """Validate an integer input batch and return its step encoding."""
    if not torch.equal(x, torch.round(x)):
        raise ConfigError(f"{where}: the simulator takes integer inputs; quantize them first")
    xmin, xmax = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
    if config.input_bits is None:
        return InputEncoding(1, (1.0,), None, xmin < 0, max(abs(xmin), abs(xmax)))
    ib = config.input_bits
    signed = xmin < 0
    lo, hi = (-(1 << (ib - 1)), (1 << (ib - 1)) - 1) if signed else (0, (1 << ib) - 1)
    if xmin < lo or xmax > hi:
        raise ConfigError(f"{where}: inputs span [{xmin:g}, {xmax:g}], outside the {ib}-bit "
                          f"{'signed' if signed else 'unsigned'} range [{lo}, {hi}]")
    coef = [float(1 << k) for k in range(ib)]
    if signed:
        coef[-1] = -coef[-1]
    return InputEncoding(ib, tuple(coef), ib, signed, 1.0)
