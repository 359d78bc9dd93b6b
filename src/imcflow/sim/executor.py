"""Run a layer's crossbar tiles on an input batch: gather windows, multiply by the tiles, scatter.

:class:`CrossbarLayer` programs the tiles of one :class:`~imcflow.sim.tiles.LayerTiles` with the
configured effects (bit slices, signed encoding, noise, drawn once, seeded) and :meth:`CrossbarLayer.run`
executes them:

1. the input is padded (real geometry; the paper geometry is a valid stride-1 convolution) and extended
   with zeros for edge windows that stick out of the output map;
2. one bit plane per input step, stacked on the batch axis;
3. per row tile, an *engine* multiplies every window's PW input vector by the physical conductances of
   every column tile of that row slice (column tiles share their input, so they run in the same
   product; each is still counted as its own activation), batched over windows, images and tile sets:
   ``"conv"`` lays the tile out as a strided convolution kernel over the PW, ``"gather"`` (reference)
   gathers the window vectors and runs a batched matmul, ``"auto"`` (default) picks per layer;
4. each column read of each step goes through the ADC, then the input steps are summed with their
   weights ``2**k`` (one weighted sum), then slices, differential halves and offset columns are
   recombined digitally and row tiles are summed;
5. outputs are scattered to ``(N, OC, Ho, Wo)``; outputs of windows beyond the map are discarded.

Exactness: every conductance is an integer, in levels, or with device noise in grid units of
``2**-resolution_bits`` of a level (:class:`~imcflow.sim.effects.NoiseSpec`), so every column value is
an integer too; products and sums run in float32 only when a bound on every partial sum is below
2**24 (every integer up to that is a float32; 2**23 where an ADC adds half an LSB), else in float64.
The result is then the same in any summation order, which makes the fast paths provably identical to
the reference path (``fused=False``: one engine output per row tile and input step, converted and
recombined on its own, the tests compare both):

* with no ADC and no read noise the per-step and per-row-tile column values need not exist on their
  own, so the engine runs all row tiles as one and the conv engine takes the steps as extra input
  channels, summing the weighted steps inside the convolution (every cell x input-bit product is still
  computed);
* with an ADC (or read noise) every column read of every step and row tile is still produced, in
  float32 where exact, and converted in place on the whole batch of reads (scale by the power-of-two
  LSB, round, clip only where a value can leave the code range); the integer codes are summed over the
  steps first (float32 where exact) and the LSB is applied once per column afterwards.

Counters are derived from the
tile structure that was executed: activations = windows x batch x tiles, which the verifier compares
with the plan's ``cycles``.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from imcflow.errors import ConfigError
from imcflow.registry import Registry
from imcflow.sim.effects import InputEncoding, SimConfig, input_encoding, weight_encoding
from imcflow.sim.tiles import LayerTiles

_FLOAT32_EXACT = float(1 << 24)
_FLOAT32_ADC = float(1 << 23)  # |column value| bound for an exact float32 ADC: v / lsb + 0.5 must fit
_FUSED_KERNEL_ELEMENTS = 1 << 26  # step-weighted kernel cells (256 MiB of float32) before steps stay apart
_CHUNK_ELEMENTS = 1 << 22  # column values (or gathered inputs) per chunk: 16 MiB of float32


@dataclass(frozen=True)
class SimCounters:
    """Event counts of one run. ``active_rows``/``active_cols`` sum the rows driven and weight columns
    read over all activations (divide by ``activations`` for the mean per activation)."""

    activations: int = 0
    input_steps: int = 0
    adc_conversions: int = 0
    active_rows: int = 0
    active_cols: int = 0

    def __add__(self, other: SimCounters) -> SimCounters:
        return SimCounters(*(x + y for x, y in zip(asdict(self).values(), asdict(other).values(),
                                                        strict=True)))

    @property
    def mean_active_rows(self) -> float:
        return self.active_rows / self.activations if self.activations else 0.0

    @property
    def mean_active_cols(self) -> float:
        return self.active_cols / self.activations if self.activations else 0.0

    def to_dict(self) -> dict[str, float]:
        d: dict[str, float] = dict(asdict(self))
        d["mean_active_rows"] = self.mean_active_rows
        d["mean_active_cols"] = self.mean_active_cols
        return d

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([self.to_dict()])


@dataclass(frozen=True)
class SimResult:
    """Output ``(N, OC, Ho, Wo)`` (float64) of one run and its counters."""

    output: torch.Tensor
    counters: SimCounters

    def to_dict(self) -> dict[str, object]:
        return {"output_shape": list(self.output.shape), **self.counters.to_dict()}

    def to_frame(self):
        return self.counters.to_frame()


@dataclass
class _RowTile:
    """Programmed conductances of one row slice: all its column tiles side by side.

    Physical columns are slice-major: ``cpw`` blocks of the N weight columns (colcat order; part-major,
    then slice, see :class:`~imcflow.sim.effects.WeightEncoding`), then one offset column per column tile.
    """

    r0: int
    r1: int
    g: torch.Tensor  # (sets, rows, phys_cols)
    col_abs: torch.Tensor  # (sets, phys_cols): sum of |g| per column (ADC "max" full scale)
    bound: float  # largest column sum of |g|: decides whether float32 is exact
    weight_bound: float  # largest column sum of |g| over weight columns only (not the offset columns)
    ref_bound: float  # largest column sum of an offset (reference) column, 0 without them
    cache: dict = field(default_factory=dict)  # engine-specific derived tensors, per dtype
    bias: float = 0.0  # added to every column value by the built-in engines (ADC rounding offset)


@dataclass(frozen=True)
class _Windows:
    """Where the windows of one input size sit in the padded input."""

    rows: torch.Tensor  # (Wh, PWh) padded input row of every PW row of every window row
    cols: torch.Tensor  # (Ww, PWw)
    pad: tuple[int, int, int, int]  # F.pad order: left, right, top, bottom

    @property
    def count(self) -> int:
        return self.rows.shape[0] * self.cols.shape[0]


# An engine computes the column values of one row tile for a chunk of bit planes:
# (layer, planes (steps*n, C, Hp, Wp), row tile, windows, steps, dtype, step weights) ->
# (steps, n, Wh, Ww, S, phys), columns last so the shift-and-add and the ADC act on contiguous column
# vectors. With step weights (a tuple, one per step) it returns (1, n, Wh, Ww, S, phys): the column
# values of every step weighted and summed (only used when that sum is exact and no ADC reads the
# individual steps).
Engine = Callable[["CrossbarLayer", torch.Tensor, _RowTile, _Windows, int, torch.dtype,
                   "tuple[float, ...] | None"], torch.Tensor]
ENGINES: Registry[Engine] = Registry("simulator engine")


def register_engine(name: str, engine: Engine, *, replace: bool = False) -> Engine:
    """Add a way of computing the window x tile products (``CrossbarLayer(engine=name)``)."""
    return ENGINES.register(name, engine, replace=replace)


def _gather_engine(sim: CrossbarLayer, planes: torch.Tensor, rt: _RowTile, win: _Windows, steps: int,
                   dt: torch.dtype, step_weights: tuple[float, ...] | None = None) -> torch.Tensor:
    """Reference engine: gather every window's PW vector with index tensors, then one batched matmul
    over tile sets (``(S, windows, rows) @ (S, rows, phys)``); step weights are applied afterwards, one
    step at a time."""
    geo = sim.tiles.geo
    b = planes.shape[0]
    g = planes[:, :, win.rows[:, :, None, None], win.cols[None, None, :, :]]  # (B, C, Wh, ph, Ww, pw)
    g = g.permute(0, 2, 4, 1, 3, 5).reshape(b, win.count, -1)  # channel-major, then PW pixel
    need = geo.sets * geo.set_rows
    if g.shape[2] < need:  # zero channels of the padding groups of the last set
        g = F.pad(g, (0, need - g.shape[2]))
    g = g.reshape(b * win.count, geo.sets, geo.set_rows)[:, :, rt.r0:rt.r1].transpose(0, 1)
    if rt.bias:
        v = torch.baddbmm(torch.full((), rt.bias, dtype=dt), g.to(dt), rt.g.to(dt))
    else:
        v = torch.bmm(g.to(dt), rt.g.to(dt))  # (S, B*windows, phys)
    v = v.reshape(geo.sets, steps, b // steps, win.rows.shape[0], win.cols.shape[0], -1)
    v = v.permute(1, 2, 3, 4, 0, 5)
    if step_weights is None:
        return v
    return sum(w * v[q] for q, w in enumerate(step_weights))[None]  # type: ignore[index]


def _axis_kernel(pos: tuple[int, ...]) -> tuple[torch.Tensor, int]:
    """Kernel index of each PW position and the dilation: an arithmetic progression of positions is a
    dilated kernel; otherwise the kernel spans the whole extent with zeros at unread positions."""
    steps = {b - a for a, b in zip(pos, pos[1:], strict=False)}
    if len(steps) == 1:
        d = steps.pop()
        return torch.tensor([p // d for p in pos]), d
    return torch.tensor(pos), 1


def _conv_engine(sim: CrossbarLayer, planes: torch.Tensor, rt: _RowTile, win: _Windows, steps: int,
                 dt: torch.dtype, step_weights: tuple[float, ...] | None = None) -> torch.Tensor:
    """Default engine: the same products through torch's strided convolution primitive, without
    materialising the gathered vectors. The tile's conductance matrix is laid out as a kernel over the
    PW (row ``c*P + y*PWw + x`` -> channel c, kernel position of PW pixel (y, x)); the stride is the
    window step (a*s, b*s), so output position (py, px) is window (py, px) and output channel p is
    physical column p. Rows outside the tile's slice are zero in that kernel.

    Input and kernel are channels-last (measured ~1.6x faster than NCHW for these many-output-channel
    kernels on one CPU thread), which also makes the output columns-last as the executor wants it.

    With step weights, the input steps become input channels (set-major, then step, then channel) and
    the kernel holds ``weight_q * g`` for step q: the convolution still performs every cell x input-bit
    product, but accumulates the weighted steps itself instead of writing one output per step (a
    ``steps`` times smaller output and a ``steps`` times deeper, more efficient matrix product)."""
    geo = sim.tiles.geo
    pr = geo.problem
    key = ("conv", dt)
    if key not in rt.cache:
        ih, dh = _axis_kernel(geo.pos_h)
        iw, dw = _axis_kernel(geo.pos_w)
        p = geo.pixels
        cs_lo, cs_hi = rt.r0 // p, (rt.r1 - 1) // p
        r = torch.arange(rt.r0, rt.r1)
        cs, pix = r // p - cs_lo, r % p
        yy, xx = pix // len(geo.pos_w), pix % len(geo.pos_w)
        sets, _, phys = rt.g.shape
        nc, kh, kw = cs_hi - cs_lo + 1, int(ih.max()) + 1, int(iw.max()) + 1
        # Channels-last kernel (memory order: output column, kh, kw, channel) written in one copy.
        kernel = torch.empty(sets * phys, kh, kw, nc, dtype=dt)
        if rt.r0 % p == 0 and rt.r1 % p == 0 and (kh, kw) == (len(geo.pos_h), len(geo.pos_w)):
            # Whole channels, every kernel position a PW pixel: the tile is the kernel, permuted.
            tile = rt.g.view(sets, nc, kh, kw, phys)
            kernel.view(sets, phys, kh, kw, nc).copy_(tile.permute(0, 4, 2, 3, 1))
        else:
            full = torch.zeros(sets, nc, kh, kw, phys, dtype=dt)
            full[:, cs, ih[yy], iw[xx], :] = rt.g.to(dt)
            kernel.view(sets, phys, kh, kw, nc).copy_(full.permute(0, 4, 2, 3, 1))
            del full
        kernel = kernel.permute(0, 3, 1, 2)  # (S*phys, nc, kh, kw), channels-last strides
        chans = (torch.arange(sets)[:, None] * geo.set_rows // p + torch.arange(cs_lo, cs_hi + 1)).ravel()
        rt.cache[key] = (kernel, chans, (dh, dw), cs_lo, cs_hi)
    kernel, chans, dil, cs_lo, cs_hi = rt.cache[key]
    sets = geo.sets
    if step_weights is not None:
        fkey = ("conv-steps", dt, step_weights)
        if fkey not in rt.cache:
            k = kernel.reshape(sets, -1, *kernel.shape[1:])  # (S, phys, cs, kh, kw)
            k = torch.stack([w * k for w in step_weights], dim=2)  # (S, phys, steps, cs, kh, kw)
            rt.cache[fkey] = k.reshape(kernel.shape[0], -1, *kernel.shape[2:]).contiguous(
                memory_format=torch.channels_last)
        kernel = rt.cache[fkey]
    if sets == 1:
        inp = planes[:, cs_lo:cs_hi + 1]
    else:
        need = sets * geo.set_rows // geo.pixels
        if planes.shape[1] < need:  # zero channels of the padding groups of the last set
            planes = F.pad(planes, (0, 0, 0, 0, 0, need - planes.shape[1]))
        inp = planes if len(chans) == need else planes.index_select(1, chans)
    n = planes.shape[0] // steps
    if step_weights is None:
        inp = inp.to(dt).contiguous(memory_format=torch.channels_last)
    else:  # (steps*n, S*cs, H, W) -> channels-last (n, S*steps*cs, H, W) in one copy
        h, w = inp.shape[2:]
        inp = inp.reshape(steps, n, sets, -1, h, w).permute(1, 4, 5, 2, 0, 3).to(dt).contiguous()
        inp = inp.reshape(n, h, w, -1).permute(0, 3, 1, 2)
        steps = 1
    bias = torch.full((kernel.shape[0],), rt.bias, dtype=dt) if rt.bias and step_weights is None else None
    v = F.conv2d(inp, kernel, bias, stride=(geo.a * pr.stride_h, geo.b * pr.stride_w), dilation=dil,
                 groups=sets)
    wh, ww = win.rows.shape[0], win.cols.shape[0]
    v = v.permute(0, 2, 3, 1)[:, :wh, :ww]  # (B, Wh, Ww, S*phys), contiguous when nothing is cut
    return v.reshape(steps, n, wh, ww, sets, -1)


def _auto_engine(sim: CrossbarLayer, planes: torch.Tensor, rt: _RowTile, win: _Windows, steps: int,
                 dt: torch.dtype, step_weights: tuple[float, ...] | None = None) -> torch.Tensor:
    """Default: the conv engine for one tile set, the gather engine for several. Measured on
    MobileNetV2's depthwise layers on 512x512 arrays (96-192 tile sets of one channel, PW up to 39x39),
    torch's grouped convolution took 0.4-6.6 s per layer where gather + batched matmul took 0.06-0.3 s;
    with one set (every ResNet layer) the conv engine is the fast one."""
    engine = _conv_engine if sim.tiles.geo.sets == 1 else _gather_engine
    return engine(sim, planes, rt, win, steps, dt, step_weights)


register_engine("auto", _auto_engine)
register_engine("conv", _conv_engine)
register_engine("gather", _gather_engine)
# Engines that honour _RowTile.bias (a registered engine may not: it then gets unscaled tiles).
_BIAS_ENGINES = (_auto_engine, _conv_engine, _gather_engine)


class CrossbarLayer:
    """The programmed crossbars of one layer; :meth:`run` executes a batch.

    ``engine`` picks how the window x tile products are computed: ``"auto"`` (default: ``"conv"`` for
    one tile set, ``"gather"`` for several), ``"conv"`` (strided convolution) or ``"gather"`` (explicit
    gather + batched matmul, the reference); all are exact. ``fused`` allows the fused passes of
    :meth:`_passes` (provably identical; off = per row tile and per input step).

    >>> import torch
    >>> from imcflow.layers import ConvLayer
    >>> from imcflow.hardware import ArraySpec
    >>> from imcflow.sim.tiles import build_tiles
    >>> layer = ConvLayer("c", 2, 3, 3, input_size=5, padding=1)
    >>> w = torch.arange(54.).reshape(3, 2, 3, 3) % 5 - 2
    >>> x = torch.arange(50.).reshape(1, 2, 5, 5) % 7
    >>> res = CrossbarLayer(build_tiles(layer, w, ArraySpec(32, 16), "vwsdk")).run(x)
    >>> bool((res.output == torch.nn.functional.conv2d(x.double(), w.double(), padding=1)).all())
    True
    >>> res.counters.activations    # 3x3 windows of 2x2 outputs (edge windows stick out), 1 tile
    9
    """

    def __init__(self, tiles: LayerTiles, config: SimConfig | None = None, engine: str = "auto",
                 fused: bool = True) -> None:
        self.fused = fused
        self._merged: _RowTile | None = None
        self._scaled: dict[int, tuple[torch.Tensor, _RowTile]] = {}
        self.engine = ENGINES.get(engine)
        self.tiles = tiles
        self.config = config or SimConfig()
        where = f"layer {tiles.layer.name!r}"
        mats = tiles.set_matrices
        # The set matrices hold the layer's weights and zeros: validating the (much smaller) weight
        # tensor is equivalent and spares a full-size temporary on large layers.
        self.wenc = weight_encoding(self.config, mats if tiles.weight is None else tiles.weight, where)
        self.cpw = self.wenc.columns_per_weight
        self.colcat = torch.as_tensor(np.concatenate(tiles.col_index))
        self.inverse = torch.argsort(self.colcat)
        bounds = np.cumsum([0] + [len(c) for c in tiles.col_index])
        self.col_tile_span = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
        ncol = len(self.colcat)
        tile_of = torch.as_tensor(np.concatenate([np.full(len(c), j) for j, c in enumerate(tiles.col_index)]))
        # Offset (reference) columns: their cells (rows x ref_cols) and the one each weight column uses.
        self.ref_cells, self.ref_index, ref_tile = self._reference_columns(mats, tile_of)
        self.ref_cols = self.ref_cells.shape[1]
        self.equal_col_tiles = len({len(c) for c in tiles.col_index}) == 1
        self.col_blocks = _column_blocks(self.colcat, tiles.geo, len(tiles.col_index))
        # Column tile of every physical column (slice-major weight columns, then offset columns).
        self.phys_tile = torch.cat([tile_of.repeat(self.cpw), ref_tile]).long()
        layer_seed = self.config.seed * 1_000_003 + zlib.crc32(tiles.layer.name.encode())
        gen = torch.Generator().manual_seed(layer_seed % (1 << 63))
        spec = self.config.noise if self.config.noise and self.config.noise.active else None
        noise = spec if spec is not None and spec.static else None
        self.noisy = noise is not None  # conductances perturbed (on the grid, still integers in grid units)
        # Conductances and column values are held in grid units (levels x unit) whenever noise is on.
        self.unit = spec.unit if spec is not None else 1.0
        self.read_noise = spec if spec is not None and spec.read_sigma else None
        # Read noise has its own stream: the programmed conductances do not depend on read_sigma.
        self._read_gen = torch.Generator().manual_seed((layer_seed * 31 + 17) % (1 << 63))
        self.row_tiles: list[_RowTile] = []
        spans = list(tiles.row_slices)
        # Row slices that partition the set rows in order (every built-in cutter) are views of one
        # conductance tensor, which then also serves as the merged tile of the fused path.
        self._contiguous_rows = spans[0][0] == 0 and all(
            a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
        whole = torch.empty(mats.shape[0], spans[-1][1], self.cpw * ncol + self.ref_cols,
                            dtype=torch.float64) if self._contiguous_rows else None
        for r0, r1 in spans:
            w = mats[:, r0:r1][:, :, self.colcat]  # (S, k, N)
            g = self.wenc.cells(w).permute(0, 1, 3, 2).reshape(w.shape[0], r1 - r0, self.cpw * ncol)
            if self.ref_cols:
                ref = self.ref_cells[r0:r1].expand(w.shape[0], -1, -1)
                g = torch.cat([g, ref], dim=2)
            if noise is not None:
                g = noise.apply(g, self.wenc.top_level, gen)
            elif self.unit != 1:
                g = g * self.unit
            if whole is not None:
                whole[:, r0:r1] = g
                g = whole[:, r0:r1]
            col_abs = g.abs().sum(dim=1)
            nw = self.cpw * ncol
            wb = float(col_abs[:, :nw].max()) if nw and col_abs.numel() else 0.0
            rb = float(col_abs[:, nw:].max()) if self.ref_cols and col_abs.numel() else 0.0
            self.row_tiles.append(_RowTile(r0, r1, g, col_abs, max(wb, rb), wb, rb))
        self._whole = whole
        self.coef = self.wenc.coefficients()
        self._per_window = self._structure_counts()

    # -- counters ------------------------------------------------------------------------------------

    def _structure_counts(self) -> SimCounters:
        """Counts for one window of one image: every tile of every set activated once."""
        geo, t = self.tiles.geo, self.tiles
        acts = rows = cols = phys = 0
        for s in range(geo.sets):
            real_rows = geo.groups_in_set(s) * geo.rows_per_group
            real_cols = geo.groups_in_set(s) * geo.cols_per_group
            for r0, r1 in t.row_slices:
                nr = max(0, min(r1, real_rows) - r0)
                for j, c in enumerate(t.col_index):
                    nc = int((c < real_cols).sum())
                    if nr == 0 or nc == 0:
                        continue  # a tile of padding groups only does not exist
                    acts += 1
                    rows += nr
                    cols += nc
                    phys += nc * self.cpw + int(self._refs_per_tile[j])
        return SimCounters(acts, acts, phys, rows, cols)

    def _reference_columns(self, mats: torch.Tensor, tile_of: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Offset columns: cells ``(rows, refs)``, the reference column of every weight column (in
        colcat order) and the column tile of every reference column.

        An offset-encoded cell stores ``w + offset``, so a weight column reads ``offset x`` the sum of
        the inputs of the rows it spans; one all-ones column per column tile measures that sum. A
        tile row outside a column's taps (a parallel window's other offsets, another packed group)
        holds weight 0, stored as the level ``offset``, so every column spans all rows. Binary
        ``{-1, +1}`` weights have no level for 0: such a cell is left at level 0 (it adds nothing), and
        the column needs the input sum over its taps only, so a tile gets one reference column per
        distinct tap pattern of its columns (one for im2col, ``a*b`` for a parallel window), with
        cells at level 1 on those taps."""
        ntiles = len(self.tiles.col_index)
        ncol = len(self.colcat)
        if not self.wenc.offset:
            empty = torch.zeros(0, dtype=torch.long)
            self._refs_per_tile = torch.zeros(ntiles, dtype=torch.long)
            return torch.zeros(mats.shape[1], 0, dtype=torch.float64), empty, empty
        if self.wenc.step == 1:
            self._refs_per_tile = torch.ones(ntiles, dtype=torch.long)
            return (torch.ones(mats.shape[1], ntiles, dtype=torch.float64), tile_of.long(),
                    torch.arange(ntiles))
        # Binary weights are never 0, so the non-zero pattern of a column is its taps (padding groups
        # of the last set are all zero and read zero inputs: the union over sets is safe).
        taps = (mats[:, :, self.colcat] != 0).any(dim=0).to(torch.float64)  # (K, ncol)
        cells: list[torch.Tensor] = []
        tile: list[int] = []
        index = torch.empty(ncol, dtype=torch.long)
        for j, (c0, c1) in enumerate(self.col_tile_span):
            pats, inv = torch.unique(taps[:, c0:c1], dim=1, return_inverse=True)
            index[c0:c1] = inv + len(tile)
            cells.append(pats)
            tile.extend([j] * pats.shape[1])
        self._refs_per_tile = torch.bincount(torch.tensor(tile), minlength=ntiles)
        return torch.cat(cells, dim=1), index, torch.tensor(tile)

    def counters(self, batch: int, steps: int) -> SimCounters:
        """Counters of a run over ``batch`` images with ``steps`` input steps."""
        w = self.tiles.plan.windows * batch
        p = self._per_window
        return SimCounters(p.activations * w, p.activations * w * steps, p.adc_conversions * w * steps,
                           p.active_rows * w, p.active_cols * w)

    # -- execution -----------------------------------------------------------------------------------

    def _windows(self, h: int, w: int) -> _Windows:
        t = self.tiles
        pr, geo = t.geo.problem, t.geo
        # ConvLayer normalises padding and sizes to pairs when it is built.
        pad_h, pad_w = (0, 0) if t.geometry == "paper" else cast("tuple[int, int]", t.layer.padding)
        rows = (torch.arange(t.plan.windows_h) * geo.a * pr.stride_h)[:, None] + torch.as_tensor(geo.pos_h)
        cols = (torch.arange(t.plan.windows_w) * geo.b * pr.stride_w)[:, None] + torch.as_tensor(geo.pos_w)
        # Edge windows sticking out of the output map read zeros beyond the padded input.
        extra_h = max(0, int(rows.max()) + 1 - (h + 2 * pad_h))
        extra_w = max(0, int(cols.max()) + 1 - (w + 2 * pad_w))
        return _Windows(rows, cols, (pad_w, pad_w + extra_w, pad_h, pad_h + extra_h))

    def run(self, x: torch.Tensor) -> SimResult:
        """Execute the layer on an integer batch ``x`` of shape ``(N, IC, H, W)`` (or ``(N, IC)`` for a
        linear layer)."""
        t = self.tiles
        layer, geo = t.layer, t.geo
        where = f"layer {layer.name!r}"
        x = torch.as_tensor(x)
        flat = x.dim() == 2
        if flat:
            x = x[:, :, None, None]
        size = cast("tuple[int, int]", layer.input_size)  # a pair once the layer is built
        if x.dim() != 4 or x.shape[1] != layer.in_channels or tuple(x.shape[2:]) != size:
            raise ConfigError(f"{where}: input shape {tuple(x.shape)} does not match the layer; expected "
                              f"(N, {layer.in_channels}, {size[0]}, {size[1]})")
        enc = input_encoding(self.config, x, where)
        n = x.shape[0]
        win = self._windows(x.shape[2], x.shape[3])
        wide = enc.top_level >= _FLOAT32_EXACT
        xp = F.pad(x.to(torch.float64 if wide else torch.float32), win.pad)
        phys = max(rt.g.shape[2] for rt in self.row_tiles)
        per_image = enc.steps * win.count * geo.sets * max(phys, geo.set_rows)
        chunk = max(1, _CHUNK_ELEMENTS // max(per_image, 1))
        adc = self.config.adc
        signed_adc = self.wenc.cell_bits is None or (enc.bits is None and enc.twos_complement)
        scales: list[torch.Tensor] | None = None
        if adc is not None:
            if adc.full_scale == "calibrated":
                scales = self._calibrate(xp, enc, win, chunk)
            elif adc.full_scale == "max":
                scales = [self._tile_max(rt.col_abs * enc.top_level) for rt in self.row_tiles]
            else:
                scales = [torch.full_like(rt.col_abs, float(adc.full_scale) * self.unit)
                          for rt in self.row_tiles]
        ideal = adc is None and self.read_noise is None  # nothing reads a step's column values
        acc = self._accumulator_dtype(enc, ideal)
        passes = self._passes(enc, ideal)
        y = torch.zeros(n, win.rows.shape[0], win.cols.shape[0], geo.sets, len(self.colcat), dtype=acc)
        for n0 in range(0, n, chunk):
            n1 = min(n, n0 + chunk)
            planes = enc.planes(xp[n0:n1]).flatten(0, 1)
            for i, rt, fused in passes:
                if fused:  # provably exact in float32, step weights applied by the engine
                    v = self.engine(self, planes, rt, win, enc.steps, torch.float32, enc.coefficients)
                    self._recombine(v, (1.0,), y[n0:n1], torch.float32)
                elif self.fused and not ideal:
                    self._read_batched(i, planes, rt, win, enc, scales[i] if scales else None, signed_adc,
                                       y[n0:n1])
                else:
                    self._read_reference(planes, rt, win, enc, scales[i] if scales else None, signed_adc,
                                         y[n0:n1])
        out = self._scatter(y)
        if self.unit != 1:
            out.div_(self.unit)  # grid units -> levels (a power of two: exact)
        return SimResult(out[:, :, 0, 0] if flat else out, self.counters(n, enc.steps))

    def _read_reference(self, planes: torch.Tensor, rt: _RowTile, win: _Windows, enc: InputEncoding,
                        scale: torch.Tensor | None, signed_adc: bool, out: torch.Tensor) -> None:
        """Reference path of one row tile: every column read of every step, read noise added, each
        converted by :meth:`AdcSpec.convert`, then the shift-and-add in float64."""
        v = self.engine(self, planes, rt, win, enc.steps, self._dtype(rt, enc), None)
        if self.read_noise is not None:
            v = v.to(torch.float64) + self.read_noise.read(tuple(v.shape), self._read_gen)
        adc = self.config.adc
        if adc is not None and scale is not None:
            v = adc.convert(v, scale, signed_adc, self.unit)
        self._recombine(v, enc.coefficients, out, self._step_dtype(rt, enc, adc is None and
                                                                     self.read_noise is None))

    def _read_batched(self, i: int, planes: torch.Tensor, rt: _RowTile, win: _Windows,
                      enc: InputEncoding, scale: torch.Tensor | None, signed_adc: bool,
                      out: torch.Tensor) -> None:
        """Fast path of row tile ``i`` with column reads (ADC and/or read noise): the same column values
        as :meth:`_read_reference` for the whole batch of windows, steps and slices, converted in place
        (float32 where every value and half an LSB stay below 2**23, so each step is exact), codes
        summed over steps before the LSB is applied: identical numbers, fewer passes over memory.

        With the built-in engines the ADC's scaling and rounding offset are folded into the product:
        the engine runs the tile's conductances times ``1 / lsb`` (a power of two: exact) plus 0.5, so
        it returns ``v / lsb + 0.5`` and only the floor (and the clip, if needed) remains."""
        noise = None
        bound = rt.bound * enc.top_level
        if self.read_noise is not None:
            steps, n = enc.steps, planes.shape[0] // enc.steps
            shape = (steps, n, win.rows.shape[0], win.cols.shape[0], self.tiles.geo.sets, rt.g.shape[2])
            noise = self.read_noise.read(shape, self._read_gen)
            bound += float(noise.abs().max()) if noise.numel() else 0.0
        dt = torch.float32 if bound < _FLOAT32_ADC else torch.float64
        adc = self.config.adc
        if adc is None or scale is None:
            v = self.engine(self, planes, rt, win, enc.steps, dt, None)
            if noise is not None:
                v.add_(noise.to(dt))
            self._recombine(v, enc.coefficients, out, torch.float64)
            return
        lsb = adc.lsbs(scale, signed_adc, self.unit)
        # Full scale "max" and "calibrated" cover every noiseless read (conductances are >= 0, so an
        # unsigned ADC never sees a negative value): clipping can only happen with a fixed full scale
        # or with read noise.
        clip = noise is not None or not isinstance(adc.full_scale, str)
        if self.engine in _BIAS_ENGINES:
            v = self.engine(self, planes, self._scaled_tile(i, rt, lsb), win, enc.steps, dt, None)
            if noise is not None:
                v.add_((noise / lsb).to(dt))  # exact: grid integers over a power of two
            v.floor_()
            if clip:
                v.clamp_(*adc.code_range(signed_adc))
        else:
            v = self.engine(self, planes, rt, win, enc.steps, dt, None)
            if noise is not None:
                v.add_(noise.to(dt))
            adc.codes_(v, lsb, signed_adc, clip)
        lo, hi = adc.code_range(signed_adc)
        code_bound = max(-lo, hi) * sum(abs(c) for c in enc.coefficients)
        self._recombine(v, enc.coefficients, out,
                        torch.float32 if code_bound < _FLOAT32_EXACT else torch.float64, lsb)

    def _scaled_tile(self, i: int, rt: _RowTile, lsb: torch.Tensor) -> _RowTile:
        """Row tile ``i`` with conductances ``g / lsb`` and the rounding offset as bias (cached while
        the LSBs stay the same: always for full scale "max" or a number)."""
        bias = 0.5 if self.config.adc is not None and self.config.adc.rounding == "nearest" else 0.0
        hit = self._scaled.get(i)
        if hit is None or not torch.equal(hit[0], lsb):
            g = rt.g / lsb[:, None, :]
            hit = (lsb, _RowTile(rt.r0, rt.r1, g, rt.col_abs, rt.bound, rt.weight_bound, rt.ref_bound,
                                 bias=bias))
            self._scaled[i] = hit
        return hit[1]

    def _dtype(self, rt: _RowTile, enc: InputEncoding) -> torch.dtype:
        # Integer column values (levels, or grid units with noise) are exact in float32 below the
        # limit; with an ADC the rounding adds half an LSB, so one bit is kept in reserve.
        limit = _FLOAT32_EXACT if self.config.adc is None else _FLOAT32_ADC
        return torch.float32 if rt.bound * enc.top_level < limit else torch.float64

    def _tile_max(self, per_col: torch.Tensor) -> torch.Tensor:
        """Each physical column's value replaced by the maximum over its column tile (per set)."""
        ntiles = len(self.tiles.col_index)
        m = torch.zeros(per_col.shape[0], ntiles, dtype=per_col.dtype)
        m = m.scatter_reduce(1, self.phys_tile.expand(per_col.shape[0], -1), per_col, reduce="amax")
        return m[:, self.phys_tile]

    def _calibrate(self, xp: torch.Tensor, enc: InputEncoding, win: _Windows,
                   chunk: int) -> list[torch.Tensor]:
        """Calibrated ADC full scale: the largest |column value| per tile over the whole batch."""
        peaks = [torch.zeros_like(rt.col_abs) for rt in self.row_tiles]
        for n0 in range(0, xp.shape[0], chunk):
            planes = enc.planes(xp[n0:n0 + chunk]).flatten(0, 1)
            for i, rt in enumerate(self.row_tiles):
                v = self.engine(self, planes, rt, win, enc.steps, self._dtype(rt, enc), None)
                peaks[i] = torch.maximum(peaks[i], v.abs().amax(dim=(0, 1, 2, 3)).to(peaks[i].dtype))
        return [self._tile_max(p) for p in peaks]

    def _terms(self, enc: InputEncoding) -> list[tuple[float, bool]]:
        """(digital weight, is an offset column) of every term of the shift-and-add of one output:
        input steps x (physical columns of one weight, then its offset column)."""
        cols = [(float(c), False) for c in self.coef] + ([(-float(self.wenc.offset), True)]
                                                         if self.ref_cols else [])
        return [(sq * c, ref) for sq in enc.coefficients for c, ref in cols]

    def _accumulator_dtype(self, enc: InputEncoding, ideal_adc: bool) -> torch.dtype:
        """float32 when every partial sum of the whole shift-and-add (all row tiles, slices, parts,
        offset columns and input steps) stays below 2**24, so float32 arithmetic on integers is exact;
        float64 otherwise, whenever an ADC scales the column values and whenever noise makes the
        conductances non-integer (the error reported must be the device's, not float32 rounding).

        Any partial sum, in any order, lies in ``[-neg, pos]`` where ``pos``/``neg`` add the largest
        magnitudes of the positive/negative terms, so ``max(pos, neg) < 2**24`` is sufficient."""
        if not ideal_adc:
            return torch.float64
        wb = sum(rt.weight_bound for rt in self.row_tiles) * enc.top_level
        rb = sum(rt.ref_bound for rt in self.row_tiles) * enc.top_level
        pos = neg = 0.0
        for k, ref in self._terms(enc):
            m = abs(k) * (rb if ref else wb)
            pos, neg = (pos + m, neg) if k > 0 else (pos, neg + m)
        return torch.float32 if max(pos, neg) < _FLOAT32_EXACT else torch.float64

    def _step_dtype(self, rt: _RowTile, enc: InputEncoding, ideal_adc: bool) -> torch.dtype:
        """float32 for the weighted sum over input steps of one row tile when it is exact there."""
        if not ideal_adc:
            return torch.float64
        return torch.float32 if self._step_bound(rt, enc) < _FLOAT32_EXACT else torch.float64

    def _passes(self, enc: InputEncoding, ideal_adc: bool) -> list[tuple[int, _RowTile, bool]]:
        """What the engine runs per chunk: (row tile index, tile, fused).

        Fused passes let the engine sum inside its product what the digital periphery would sum
        afterwards: the weighted input steps and, when possible, the row tiles (one pass over
        :meth:`_merged_rows`). Every cell x input-bit product is still computed; only partial sums
        nobody reads are not materialised. That is used only where it is provably identical to the
        per-tile, per-step path: no ADC reads the individual column values, the conductances are
        integers (no noise), and every partial sum of the fused product is an integer below 2**24 in
        float32 (exact in any summation order). ``fused=False`` turns it off; the tests compare both."""
        every = [(i, rt, False) for i, rt in enumerate(self.row_tiles)]
        if not (self.fused and ideal_adc):
            return every
        merged = self._merged_rows()
        if merged is not None and len(self.row_tiles) > 1 and self._step_bound(merged, enc) < _FLOAT32_EXACT:
            return [(-1, merged, self._fuse_steps(merged, enc))]
        return [(i, rt, self._fuse_steps(rt, enc)) for i, rt, _ in every]

    def _fuse_steps(self, rt: _RowTile, enc: InputEncoding) -> bool:
        """Steps summed by the engine: exact in float32, and the step-weighted kernel (``steps`` times
        the tile) small enough; VGG's 25088->4096 layer with 4 slices and 8 steps would need 13 GB."""
        return (enc.steps > 1 and self._step_bound(rt, enc) < _FLOAT32_EXACT
                and enc.steps * rt.g.numel() <= _FUSED_KERNEL_ELEMENTS)

    def _step_bound(self, rt: _RowTile, enc: InputEncoding) -> float:
        """Largest |partial sum| of one column over the rows of ``rt`` and the weighted input steps."""
        pos = sum(c for c in enc.coefficients if c > 0)
        neg = -sum(c for c in enc.coefficients if c < 0)
        return rt.bound * enc.top_level * max(pos, neg)

    def _merged_rows(self) -> _RowTile | None:
        """All row tiles as one (their row slices partition the set rows in order), or None."""
        if self._merged is None and self._whole is not None:
            g = self._whole
            col_abs = torch.stack([rt.col_abs for rt in self.row_tiles]).sum(dim=0)  # no full-size temp
            bound = float(col_abs.max()) if col_abs.numel() else 0.0
            self._merged = _RowTile(0, g.shape[1], g, col_abs, bound, bound, bound)
        return self._merged

    def _recombine(self, v: torch.Tensor, step_weights: tuple[float, ...], out: torch.Tensor,
                   step_dtype: torch.dtype, lsb: torch.Tensor | None = None) -> None:
        """Shift-and-add over input steps, then slices and differential halves, minus the offset
        columns, accumulated into ``out`` (n, Wh, Ww, S, N). ``v``: (steps, n, Wh, Ww, S, phys);
        ``lsb`` (S, phys): ADC codes in ``v``, multiplied by their column's LSB after the step sum.

        The input steps are reduced first, as one weighted sum that reads ``v`` once (a matrix-vector
        product over the step axis); slices and offset columns then act on the ``steps`` times smaller
        result. Integer data stays exact: :meth:`_step_dtype` and :meth:`_accumulator_dtype` bound
        every partial sum."""
        ncol = len(self.colcat)
        v = v.to(step_dtype)
        if v.shape[0] == 1:
            r = v[0] if step_weights[0] == 1 else v[0] * step_weights[0]
        else:
            r = torch.tensordot(torch.tensor(step_weights, dtype=step_dtype), v, dims=1)
        if lsb is not None:  # codes x a power of two: exact in any float type, no widening copy
            r = r.mul_(lsb.to(r.dtype)) if r.data_ptr() != v.data_ptr() else r * lsb.to(r.dtype)
        else:
            r = r.to(out.dtype)  # (n, Wh, Ww, S, phys)
        for c in range(self.cpw):
            out.add_(r[..., c * ncol:(c + 1) * ncol], alpha=float(self.coef[c]))
        if self.ref_cols:
            # Every weight column loses offset x the input sum its column tile's reference column read
            # (broadcast per column tile: a gather along the last axis is several times slower).
            ref = r[..., self.cpw * ncol:]
            if self.ref_cols != len(self.col_tile_span):  # several tap patterns per tile (binary)
                out.sub_(ref[..., self.ref_index], alpha=self.wenc.offset)
            elif self.equal_col_tiles:
                out.view(*out.shape[:-1], self.ref_cols, -1).sub_(ref[..., None], alpha=self.wenc.offset)
            else:
                for j, (c0, c1) in enumerate(self.col_tile_span):
                    out[..., c0:c1].sub_(ref[..., j:j + 1], alpha=self.wenc.offset)

    def _scatter(self, y: torch.Tensor) -> torch.Tensor:
        """(N, Wh, Ww, S, set columns in colcat order) -> (N, OC, Ho, Wo)."""
        t = self.tiles
        geo, plan = t.geo, t.plan
        pr = geo.problem
        n, s = y.shape[0], y.shape[3]
        wh, ww = plan.windows_h, plan.windows_w
        if self.col_blocks is not None:  # colcat = (output-channel blocks, offsets, channels of a block)
            t_, ct = self.col_blocks
            y = y.reshape(n, wh, ww, s, t_, geo.a, geo.b, ct)
            y = y.permute(0, 3, 4, 7, 1, 5, 2, 6)  # (N, S, blocks, ct, Wh, a, Ww, b)
        else:
            y = y[..., self.inverse]
            y = y.reshape(n, wh, ww, s, geo.groups_per_set, geo.a, geo.b, pr.oc)
            y = y.permute(0, 3, 4, 7, 1, 5, 2, 6)  # (N, S, gp, OC, Wh, a, Ww, b)
        y = y.reshape(n, s * geo.groups_per_set * pr.oc, plan.windows_h * geo.a, plan.windows_w * geo.b)
        y = y[:, : pr.groups * pr.oc, : plan.out_h, : plan.out_w]
        out = torch.empty(y.shape, dtype=torch.float64)  # one copy: reorder and widen together
        return out.copy_(y)


def _column_blocks(colcat: torch.Tensor, geo, col_tiles: int) -> tuple[int, int] | None:
    """``(T, ct)`` when the executed column order is ``T`` blocks of ``ct`` output channels, each
    offset-major (``T = 1``: the set matrix's own order; ``T`` = column tiles: VW-SDK's whole-channel
    tiles), so scattering is a reshape and a permute instead of a gather (several times faster);
    None otherwise."""
    ab, oc = geo.a * geo.b, geo.problem.oc
    if geo.groups_per_set > 1:  # groups packed in one set: (gp, offsets, OC) when in natural order
        return (geo.groups_per_set, oc) if torch.equal(colcat, torch.arange(len(colcat))) else None
    for t_ in sorted({1, col_tiles}):
        if oc % t_ == 0:
            order = torch.arange(ab * oc).reshape(ab, t_, oc // t_).permute(1, 0, 2).reshape(-1)
            if torch.equal(order, colcat):
                return t_, oc // t_
    return None


def reference_conv(layer, weight: torch.Tensor, x: torch.Tensor, geometry: str = "real") -> torch.Tensor:
    """``torch.nn.functional.conv2d`` of the layer in float64 (paper geometry: stride 1, no padding)."""
    w = torch.as_tensor(weight).to(torch.float64)
    if w.dim() == 2:
        w = w[:, :, None, None]
    x = torch.as_tensor(x).to(torch.float64)
    if x.dim() == 2:
        x = x[:, :, None, None]
    if geometry == "paper":
        return F.conv2d(x, w, groups=layer.groups)
    return F.conv2d(x, w, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                    groups=layer.groups)
