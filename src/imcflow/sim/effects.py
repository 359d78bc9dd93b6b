"""Hardware non-idealities of the crossbar simulator, each off by default.

* **Weight bit slicing** (``weight_bits`` over ``cell_bits``): an integer weight is stored in
  ``S = ceil(weight_bits / cell_bits)`` cells of adjacent columns, slice ``j`` holding bits
  ``[j*cell_bits, (j+1)*cell_bits)``; the column outputs are recombined digitally with weights
  ``2**(j*cell_bits)`` (shift and add). Cells are conductances, so they hold non-negative levels; a
  signed weight uses one of two encodings (``signed``):

  - ``"offset"``: the cell stores ``w + 2**(weight_bits-1)`` (range ``[-2**(wb-1), 2**(wb-1)-1]``,
    the usual int quantization range); one extra reference column of cells at level 1 per tile
    measures the input sum, and ``2**(weight_bits-1) * sum(x)`` is subtracted digitally.
    A **1-bit** offset weight is ``{-1, +1}`` (a binary network's sign weight, BinaryConnect /
    XNOR-Net): the cell stores ``(w + 1) / 2`` in ``{0, 1}``, its column is read with digital weight 2
    and ``1 * sum(x)`` is subtracted (``w = 2c - 1``). The formula above would give the range
    ``[-1, 0]``, which holds no positive weight (a layer quantized to it is all zeros or negative, and
    symmetric quantization to it has no levels); ``{0, 1}`` would drop the sign. ``{-1, +1}`` costs the
    same one cell plus the shared reference column.
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
  conductance ``max(0, g * (1 + sigma * N(0, 1)))`` per cell, then stuck-at-off cells (0) and
  stuck-at-on cells (the highest level) at given rates, on every physical cell including zero-weight
  ones. The programmed conductance is held on a grid of ``2**-resolution_bits`` of one level (default 12 bits:
  0.00024 of a level, 80x finer than sigma 0.02), so every column sum is an exact multiple of the grid
  and the simulator's fast and reference paths give identical numbers in any summation order.
  Optional **read noise** (``read_sigma``): additive Gaussian noise on every analog column read (every
  input step, row tile and physical column), drawn per read, in units of one cell level x one input
  unit, on the same grid.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

from imcflow.errors import ConfigError
from imcflow.seeding import check_seed
from imcflow.validate import check_bits, check_float, check_int, check_type

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
        check_bits("adc_bits", self.bits)
        if isinstance(self.full_scale, str):
            if self.full_scale not in ("max", "calibrated"):
                raise ConfigError(f"adc full_scale must be 'max', 'calibrated' or a positive number, "
                                  f"got {self.full_scale!r}")
        elif not (isinstance(self.full_scale, (int, float)) and not isinstance(self.full_scale, bool)
                  and math.isfinite(self.full_scale) and self.full_scale > 0):
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

    def lsbs(self, full_scale: torch.Tensor, signed: bool, unit: float = 1.0) -> torch.Tensor:
        """Per-column LSB (float64) for per-column ``full_scale``, both in units of ``1/unit`` of one
        level (``unit`` a power of two: the conductance grid of noisy cells); the LSB is a power of two
        >= one level, as :meth:`lsb`."""
        top = self.code_range(signed)[1]
        ratio = torch.clamp(full_scale.to(torch.float64) / (unit * max(top, 1)), min=1.0)
        return torch.exp2(torch.ceil(torch.log2(ratio))) * unit

    def codes_(self, v: torch.Tensor, lsb: torch.Tensor, signed: bool, clip: bool = True) -> torch.Tensor:
        """``v`` (last dim = columns) replaced in place by its ADC codes for per-column ``lsb`` (powers
        of two, so every step is exact); ``clip=False`` skips the clamp when the caller knows no value
        exceeds the code range."""
        v.mul_((1.0 / lsb).to(v.dtype))
        if self.rounding == "nearest":
            v.add_(0.5)
        v.floor_()
        if clip:
            lo, hi = self.code_range(signed)
            v.clamp_(lo, hi)
        return v

    def convert(self, v: torch.Tensor, full_scale: torch.Tensor, signed: bool,
                unit: float = 1.0) -> torch.Tensor:
        """Quantize column values ``v`` (last dim = columns) with per-column ``full_scale``."""
        lsb = self.lsbs(full_scale, signed, unit)
        return self.codes_(v.clone(), lsb, signed) * lsb.to(v.dtype)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NoiseSpec:
    """Static device variation: relative Gaussian ``sigma`` per cell and stuck-at fault rates, drawn
    once per programmed conductance; ``read_sigma``: additive Gaussian noise per column read (per input
    step), in units of one cell level x one input unit; ``resolution_bits``: programmed conductances
    and read noise are held on a grid of ``2**-resolution_bits`` of one level (see the module doc)."""

    sigma: float = 0.0
    stuck_on_rate: float = 0.0
    stuck_off_rate: float = 0.0
    read_sigma: float = 0.0
    resolution_bits: int = 12

    def __post_init__(self) -> None:
        check_float("noise sigma", self.sigma, 0)
        for name in ("stuck_on_rate", "stuck_off_rate"):
            check_float(f"noise {name}", getattr(self, name), 0, 1)
        if self.stuck_on_rate + self.stuck_off_rate > 1:
            raise ConfigError(f"stuck_on_rate + stuck_off_rate must be <= 1, got "
                              f"{self.stuck_on_rate} + {self.stuck_off_rate}")
        check_float("noise read_sigma", self.read_sigma, 0)
        check_int("resolution_bits", self.resolution_bits, 0, 24)

    @property
    def active(self) -> bool:
        return bool(self.static or self.read_sigma)

    @property
    def static(self) -> bool:
        """True when the programmed conductances are perturbed (variation or stuck cells)."""
        return bool(self.sigma or self.stuck_on_rate or self.stuck_off_rate)

    @property
    def unit(self) -> float:
        """Grid steps per conductance level."""
        return float(1 << self.resolution_bits)

    def apply(self, g: torch.Tensor, top_level: float, gen: torch.Generator) -> torch.Tensor:
        """Perturb conductance levels ``g`` (any shape, float64); ``top_level`` is the stuck-at-on level.
        Returns the programmed conductances in grid units (integers: levels x :attr:`unit`)."""
        out = g
        if self.sigma:
            # A conductance is not negative: a draw below -1/sigma leaves the cell at 0.
            out = (out * (1 + self.sigma * torch.randn(g.shape, generator=gen, dtype=g.dtype))).clamp_(min=0)
        if self.stuck_on_rate or self.stuck_off_rate:
            u = torch.rand(g.shape, generator=gen, dtype=torch.float64)
            out = torch.where(u < self.stuck_off_rate, torch.zeros((), dtype=g.dtype), out)
            on = (u >= self.stuck_off_rate) & (u < self.stuck_off_rate + self.stuck_on_rate)
            out = torch.where(on, torch.full((), top_level, dtype=g.dtype), out)
        return torch.round(out * self.unit)

    def read(self, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        """Read noise of one batch of column reads, in grid units (float64 integers)."""
        return torch.round(torch.randn(shape, generator=gen, dtype=torch.float64)
                           * (self.read_sigma * self.unit))

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
            check_bits("weight_bits", self.weight_bits)
        check_bits("cell_bits", self.cell_bits)
        if self.input_bits is not None:
            check_bits("input_bits", self.input_bits)
        if self.adc is not None:
            check_type("SimConfig adc", self.adc, AdcSpec, hint="e.g. AdcSpec(6), or None for ideal")
        if self.noise is not None:
            check_type("SimConfig noise", self.noise, NoiseSpec, hint="e.g. NoiseSpec(sigma=0.05)")
        if self.signed not in ("offset", "differential"):
            raise ConfigError(f"signed must be 'offset' or 'differential', got {self.signed!r}")
        check_seed(self.seed)

    def check_array(self, array: Any) -> None:
        """Refuse an array whose bit widths contradict this config's: the mapping packs weights by the
        array's ``weight_bits``/``cell_bits`` and the simulator slices them by the config's, so a
        difference would silently simulate another layout. ``weight_bits=None`` (ideal cells) agrees
        with any array."""
        if self.weight_bits is None:
            return
        for name in ("weight_bits", "cell_bits"):
            mine, theirs = getattr(self, name), getattr(array, name)
            if mine != theirs:
                raise ConfigError(f"{name} conflict: the array has {name}={theirs} but the SimConfig "
                                  f"has {name}={mine}; give both the same value")

    @property
    def weight_slices(self) -> int:
        return 1 if self.weight_bits is None else math.ceil(self.weight_bits / self.cell_bits)

    @property
    def exact(self) -> bool:
        """True when nothing but ideal arithmetic is configured (ADC and noise off)."""
        return self.adc is None and (self.noise is None or not self.noise.active)

    @property
    def binary(self) -> bool:
        """1-bit offset weights: the two values ``{-1, +1}`` (see the module doc)."""
        return self.weight_bits == 1 and self.signed == "offset"

    def weight_range(self) -> tuple[int, int] | None:
        """Smallest and largest integer weight the configured cells can hold, or None (ideal cells
        hold any integer). With :attr:`binary` weights only the two ends are allowed."""
        if self.weight_bits is None:
            return None
        wb = self.weight_bits
        if self.binary:
            return -1, 1
        if self.signed == "offset":
            return -(1 << (wb - 1)), (1 << (wb - 1)) - 1
        return -((1 << wb) - 1), (1 << wb) - 1

    def random_weights(self, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        """Seeded random integer weights (float64) spanning the cells' range (4-bit signed for ideal
        cells; ``{-1, +1}`` for binary weights)."""
        lo, hi = self.weight_range() or (-8, 7)
        if self.binary:
            return torch.randint(0, 2, shape, generator=gen).double() * 2 - 1
        return torch.randint(lo, hi + 1, shape, generator=gen).double()

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
    step: int = 1  # weight per cell level: 2 for binary {-1, +1} weights (cell = (w + 1) / 2)

    @property
    def columns_per_weight(self) -> int:
        return self.parts * self.slices

    def coefficients(self) -> torch.Tensor:
        """Digital weight of each physical column of one weight (part-major, then slice)."""
        shift = torch.ones(1, dtype=torch.float64) if self.cell_bits is None else \
            torch.tensor([float(1 << (j * self.cell_bits)) for j in range(self.slices)], dtype=torch.float64)
        sign = torch.tensor([1.0, -1.0][: self.parts], dtype=torch.float64)
        return (sign[:, None] * shift[None, :]).reshape(-1) * self.step

    def cells(self, w: torch.Tensor) -> torch.Tensor:
        """Cell levels ``(..., parts*slices)`` for integer weights ``w`` (float64)."""
        if self.cell_bits is None:
            return w[..., None]
        parts = [torch.div(w + self.offset, self.step, rounding_mode="floor")] if self.parts == 1 else \
            [torch.clamp(w, min=0), torch.clamp(-w, min=0)]
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
    wb = config.weight_bits or 1  # not None: weight_range() returned a range
    if config.binary:
        if bool((weights.abs() != 1).any()):
            raise ConfigError(f"{where}: 1-bit offset weights are -1 or +1 (binary), got a weight of 0; "
                              f"use signed='differential' for ternary {{-1, 0, 1}} weights")
        return WeightEncoding(1, config.cell_bits, 1, 1, float((1 << config.cell_bits) - 1), step=2)
    parts = 2 if config.signed == "differential" else 1
    offset = (1 << (wb - 1)) if config.signed == "offset" else 0
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
