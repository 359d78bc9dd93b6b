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

Exactness: products and sums run in float32 only when a bound on every partial sum is below 2**24
(every integer up to that is a float32), else in float64; noisy conductances always use float64.
One fast path, used only where it is provably identical: with no ADC and integer conductances the
per-step and per-row-tile column values need not exist on their own, so the engine runs all row tiles
as one and the conv engine takes the steps as extra input channels, summing the weighted steps inside
the convolution (every cell x input-bit product is still computed; ``fused=False`` turns it off and
the tests compare both). Counters are derived from the
tile structure that was executed: activations = windows x batch x tiles, which the verifier compares
with the plan's ``cycles``.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from imcflow.errors import ConfigError, UnknownNameError
from imcflow.sim.effects import InputEncoding, SimConfig, input_encoding, weight_encoding
from imcflow.sim.tiles import LayerTiles

_FLOAT32_EXACT = float(1 << 24)
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
        return SimCounters(*(x + y for x, y in zip(asdict(self).values(), asdict(other).values())))

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
_ENGINES: dict[str, Engine] = {}


def register_engine(name: str, engine: Engine) -> Engine:
    """Add a way of computing the window x tile products (``CrossbarLayer(engine=name)``)."""
    _ENGINES[name] = engine
    return engine


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
    v = torch.bmm(g.to(dt), rt.g.to(dt))  # (S, B*windows, phys)
    v = v.reshape(geo.sets, steps, b // steps, win.rows.shape[0], win.cols.shape[0], -1)
    v = v.permute(1, 2, 3, 4, 0, 5)
    if step_weights is None:
        return v
    return sum(w * v[q] for q, w in enumerate(step_weights))[None]  # type: ignore[index]


def _axis_kernel(pos: tuple[int, ...]) -> tuple[torch.Tensor, int]:
    """Kernel index of each PW position and the dilation: an arithmetic progression of positions is a
    dilated kernel; otherwise the kernel spans the whole extent with zeros at unread positions."""
    steps = {b - a for a, b in zip(pos, pos[1:])}
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
            kernel.view(sets, phys, kh, kw, nc).copy_(rt.g.view(sets, nc, kh, kw, phys).permute(0, 4, 2, 3, 1))
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
    v = F.conv2d(inp, kernel, stride=(geo.a * pr.stride_h, geo.b * pr.stride_w), dilation=dil,
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
        if engine not in _ENGINES:
            raise UnknownNameError(f"unknown simulator engine {engine!r}; known: {', '.join(_ENGINES)}")
        self.engine = _ENGINES[engine]
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
        self.col_tile_span = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
        ncol = len(self.colcat)
        tile_of = torch.as_tensor(np.concatenate([np.full(len(c), j) for j, c in enumerate(tiles.col_index)]))
        self.ref_cols = len(tiles.col_index) if self.wenc.offset else 0
        self.equal_col_tiles = len({len(c) for c in tiles.col_index}) == 1
        self.col_blocks = _column_blocks(self.colcat, tiles.geo, len(tiles.col_index))
        # Column tile of every physical column (slice-major weight columns, then offset columns).
        self.phys_tile = torch.cat([tile_of.repeat(self.cpw), torch.arange(self.ref_cols)]).long()
        gen = torch.Generator().manual_seed(
            (self.config.seed * 1_000_003 + zlib.crc32(tiles.layer.name.encode())) % (1 << 63))
        noise = self.config.noise if self.config.noise and self.config.noise.active else None
        self.noisy = noise is not None  # conductances are no longer integers
        self.row_tiles: list[_RowTile] = []
        spans = list(tiles.row_slices)
        # Row slices that partition the set rows in order (every built-in cutter) are views of one
        # conductance tensor, which then also serves as the merged tile of the fused path.
        self._contiguous_rows = spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        whole = torch.empty(mats.shape[0], spans[-1][1], self.cpw * ncol + self.ref_cols,
                            dtype=torch.float64) if self._contiguous_rows else None
        for r0, r1 in spans:
            w = mats[:, r0:r1][:, :, self.colcat]  # (S, k, N)
            g = self.wenc.cells(w).permute(0, 1, 3, 2).reshape(w.shape[0], r1 - r0, self.cpw * ncol)
            if self.ref_cols:
                g = torch.cat([g, torch.ones(w.shape[0], r1 - r0, self.ref_cols, dtype=g.dtype)], dim=2)
            if noise is not None:
                g = noise.apply(g, self.wenc.top_level, gen)
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
                for c in t.col_index:
                    nc = int((c < real_cols).sum())
                    if nr == 0 or nc == 0:
                        continue  # a tile of padding groups only does not exist
                    acts += 1
                    rows += nr
                    cols += nc
                    phys += nc * self.cpw + (1 if self.ref_cols else 0)
        return SimCounters(acts, acts, phys, rows, cols)

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
        pad_h, pad_w = (0, 0) if t.geometry == "paper" else t.layer.padding
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
        if x.dim() != 4 or x.shape[1] != layer.in_channels or tuple(x.shape[2:]) != layer.input_size:
            raise ConfigError(f"{where}: input shape {tuple(x.shape)} does not match the layer; expected "
                              f"(N, {layer.in_channels}, {layer.input_size[0]}, {layer.input_size[1]})")
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
                scales = [torch.full_like(rt.col_abs, float(adc.full_scale)) for rt in self.row_tiles]
        acc = self._accumulator_dtype(enc, adc is None)
        passes = self._passes(enc, adc is None)
        y = torch.zeros(n, win.rows.shape[0], win.cols.shape[0], geo.sets, len(self.colcat), dtype=acc)
        for n0 in range(0, n, chunk):
            n1 = min(n, n0 + chunk)
            planes = enc.planes(xp[n0:n1]).flatten(0, 1)
            for i, rt, fused in passes:
                if fused:  # provably exact in float32, step weights applied by the engine
                    v = self.engine(self, planes, rt, win, enc.steps, torch.float32, enc.coefficients)
                    self._recombine(v, (1.0,), y[n0:n1], torch.float32)
                    continue
                v = self.engine(self, planes, rt, win, enc.steps, self._dtype(rt, enc), None)
                if adc is not None and scales is not None:
                    v = adc.convert(v, scales[i], signed_adc)
                self._recombine(v, enc.coefficients, y[n0:n1], self._step_dtype(rt, enc, adc is None))
        out = self._scatter(y)
        return SimResult(out[:, :, 0, 0] if flat else out, self.counters(n, enc.steps))

    def _dtype(self, rt: _RowTile, enc: InputEncoding) -> torch.dtype:
        # Noisy conductances are not integers: float64, so the error seen is the device's alone.
        exact32 = not self.noisy and rt.bound * enc.top_level < _FLOAT32_EXACT
        return torch.float32 if exact32 else torch.float64

    def _tile_max(self, per_col: torch.Tensor) -> torch.Tensor:
        """Each physical column's value replaced by the maximum over its column tile (per set)."""
        ntiles = len(self.tiles.col_index)
        m = torch.zeros(per_col.shape[0], ntiles, dtype=per_col.dtype)
        m = m.scatter_reduce(1, self.phys_tile.expand(per_col.shape[0], -1), per_col, reduce="amax")
        return m[:, self.phys_tile]

    def _calibrate(self, xp: torch.Tensor, enc: InputEncoding, win: _Windows, chunk: int) -> list[torch.Tensor]:
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
        if not ideal_adc or self.noisy:
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
        if not ideal_adc or self.noisy:
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
        if not (self.fused and ideal_adc and not self.noisy):
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
                   step_dtype: torch.dtype) -> None:
        """Shift-and-add over input steps, then slices and differential halves, minus the offset
        columns, accumulated into ``out`` (n, Wh, Ww, S, N). ``v``: (steps, n, Wh, Ww, S, phys).

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
        r = r.to(out.dtype)  # (n, Wh, Ww, S, phys)
        for c in range(self.cpw):
            out.add_(r[..., c * ncol:(c + 1) * ncol], alpha=float(self.coef[c]))
        if self.ref_cols:
            # Every weight column loses offset x the input sum its column tile's reference column read
            # (broadcast per column tile: a gather along the last axis is several times slower).
            ref = r[..., self.cpw * ncol:]
            if self.equal_col_tiles:
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
