"""Run a layer's crossbar tiles on an input batch: gather windows, multiply by the tiles, scatter.

:class:`CrossbarLayer` programs the tiles of one :class:`~imcflow.sim.tiles.LayerTiles` with the
configured effects (bit slices, signed encoding, noise, drawn once, seeded) and :meth:`CrossbarLayer.run`
executes them:

1. the input is padded (real geometry; the paper geometry is a valid stride-1 convolution) and extended
   with zeros for edge windows that stick out of the output map;
2. every window's PW input vector is gathered with index tensors (no loop over windows), one bit plane
   per input step stacked on the batch axis;
3. per row tile, one batched matmul over tile sets multiplies the gathered vectors by the physical
   conductances of every column tile of that row slice (column tiles share their input, so they run in
   the same matmul; each is still counted as its own activation);
4. each column read goes through the ADC, then slices, differential halves, offset columns and input
   steps are recombined digitally (float64) and row tiles are summed;
5. outputs are scattered to ``(N, OC, Ho, Wo)``; outputs of windows beyond the map are discarded.

Accumulation is exact: a matmul runs in float32 only when its largest possible column sum is below
2**24 (every integer up to that is a float32), else in float64. Counters are derived from the tile
structure that was executed: activations = windows x batch x tiles, which the verifier compares with
the plan's ``cycles``.
"""
from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from imcflow.errors import ConfigError
from imcflow.sim.effects import InputEncoding, SimConfig, input_encoding, weight_encoding
from imcflow.sim.tiles import LayerTiles

_FLOAT32_EXACT = float(1 << 24)
_CHUNK_ELEMENTS = 1 << 23  # gathered input elements per chunk (32 MiB of float32)


@dataclass(frozen=True)
class SimCounters:
    """Event counts of one run. ``active_rows``/``active_cols`` sum the rows driven and weight columns
    read over all activations (divide by ``activations`` for the mean per activation)."""

    activations: int = 0
    input_steps: int = 0
    adc_conversions: int = 0
    active_rows: int = 0
    active_cols: int = 0

    def __add__(self, other: "SimCounters") -> "SimCounters":
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
    """Programmed conductances of one row slice: all its column tiles side by side."""

    r0: int
    r1: int
    g: torch.Tensor  # (sets, rows, phys_cols): weight columns (N*cpw, colcat order) then offset columns
    col_abs: torch.Tensor  # (sets, phys_cols): sum of |g| per column (ADC "max" full scale)
    bound: float  # largest column sum of |g|: decides whether float32 is exact


class CrossbarLayer:
    """The programmed crossbars of one layer; :meth:`run` executes a batch.

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
    """

    def __init__(self, tiles: LayerTiles, config: SimConfig | None = None) -> None:
        self.tiles = tiles
        self.config = config or SimConfig()
        geo = tiles.geo
        where = f"layer {tiles.layer.name!r}"
        mats = tiles.set_matrices
        self.wenc = weight_encoding(self.config, mats, where)
        self.colcat = torch.as_tensor(np.concatenate(tiles.col_index))
        self.inverse = torch.argsort(self.colcat)
        # Column tile of each weight column in colcat order (the offset column it subtracts).
        self.col_tile_of = torch.as_tensor(np.concatenate(
            [np.full(len(c), j) for j, c in enumerate(tiles.col_index)]))
        self.ref_cols = len(tiles.col_index) if self.wenc.offset else 0
        gen = torch.Generator().manual_seed(
            (self.config.seed * 1_000_003 + zlib.crc32(tiles.layer.name.encode())) % (1 << 63))
        noise = self.config.noise if self.config.noise and self.config.noise.active else None
        self.row_tiles: list[_RowTile] = []
        cpw = self.wenc.columns_per_weight
        for r0, r1 in tiles.row_slices:
            w = mats[:, r0:r1][:, :, self.colcat]  # (S, k, N)
            g = self.wenc.cells(w).reshape(w.shape[0], r1 - r0, -1)  # (S, k, N*cpw)
            if self.ref_cols:
                g = torch.cat([g, torch.ones(w.shape[0], r1 - r0, self.ref_cols, dtype=g.dtype)], dim=2)
            if noise is not None:
                g = noise.apply(g, self.wenc.top_level, gen)
            col_abs = g.abs().sum(dim=1)
            bound = float(col_abs.max()) if col_abs.numel() else 0.0
            self.row_tiles.append(_RowTile(r0, r1, g, col_abs, bound))
        self.cpw = cpw
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

    def _window_index(self, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int, int, int]]:
        """Index tensors of PW rows/cols per window, and the padding (left, right, top, bottom)."""
        t = self.tiles
        pr, geo = t.geo.problem, t.geo
        if t.geometry == "paper":
            pad_h = pad_w = 0
        else:
            pad_h, pad_w = t.layer.padding
        rows = (torch.arange(t.plan.windows_h) * geo.a * pr.stride_h)[:, None] + torch.as_tensor(geo.pos_h)
        cols = (torch.arange(t.plan.windows_w) * geo.b * pr.stride_w)[:, None] + torch.as_tensor(geo.pos_w)
        extra_h = max(0, int(rows.max()) + 1 - (h + 2 * pad_h))
        extra_w = max(0, int(cols.max()) + 1 - (w + 2 * pad_w))
        return rows, cols, (pad_w, pad_w + extra_w, pad_h, pad_h + extra_h)

    def _gather(self, planes: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """``(B, C, Hp, Wp)`` -> ``(sets, B, windows, K)`` PW vectors, channel-major then pixel."""
        geo = self.tiles.geo
        b = planes.shape[0]
        g = planes[:, :, rows[:, :, None, None], cols[None, None, :, :]]  # (B, C, Wh, ph, Ww, pw)
        g = g.permute(0, 2, 4, 1, 3, 5)  # (B, Wh, Ww, C, ph, pw)
        nwin = rows.shape[0] * cols.shape[0]
        g = g.reshape(b, nwin, -1)
        need = geo.sets * geo.set_rows
        if g.shape[2] < need:  # zero channels of the padding groups of the last set
            g = F.pad(g, (0, need - g.shape[2]))
        return g.reshape(b, nwin, geo.sets, geo.set_rows).permute(2, 0, 1, 3)

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
        rows, cols, pad = self._window_index(x.shape[2], x.shape[3])
        xp = F.pad(x.to(torch.float32), pad)
        nwin = rows.shape[0] * cols.shape[0]
        adc = self.config.adc
        signed_adc = self.wenc.cell_bits is None or (enc.bits is None and enc.twos_complement)
        full_scale = None
        if adc is not None and adc.full_scale == "calibrated":
            full_scale = self._calibrate(xp, enc, rows, cols, n, nwin)
        per_image = enc.steps * nwin * geo.sets * geo.set_rows
        chunk = max(1, _CHUNK_ELEMENTS // max(per_image, 1))
        out = torch.zeros(geo.sets, n, nwin, geo.set_cols, dtype=torch.float64)
        for n0 in range(0, n, chunk):
            n1 = min(n, n0 + chunk)
            xg = self._gather(enc.planes(xp[n0:n1]).flatten(0, 1), rows, cols)  # (S, steps*nc, nwin, K)
            for i, rt in enumerate(self.row_tiles):
                v = self._matmul(xg, rt, enc)  # (S, steps, nc*nwin, phys)
                if adc is not None:
                    fs = full_scale[i] if full_scale is not None else self._max_scale(rt, enc)
                    v = adc.convert(v, fs[:, None, None, :], signed_adc)
                out[:, n0:n1] += self._recombine(v, enc).reshape(geo.sets, n1 - n0, nwin, -1)
        y = self._scatter(out)
        return SimResult(y[:, :, 0, 0] if flat else y, self.counters(n, enc.steps))

    def _matmul(self, xg: torch.Tensor, rt: _RowTile, enc: InputEncoding) -> torch.Tensor:
        s = xg.shape[0]
        xi = xg[..., rt.r0:rt.r1]
        exact32 = rt.bound * enc.top_level < _FLOAT32_EXACT
        dt = torch.float32 if exact32 else torch.float64
        xi = xi.reshape(s, -1, rt.r1 - rt.r0).to(dt)
        v = torch.bmm(xi, rt.g.to(dt))
        return v.reshape(s, enc.steps, -1, v.shape[-1])

    def _max_scale(self, rt: _RowTile, enc: InputEncoding) -> torch.Tensor:
        """ADC full scale per physical column: the largest value its column tile can produce."""
        per_col = rt.col_abs * enc.top_level
        return self._tile_max(per_col)

    def _tile_max(self, per_col: torch.Tensor) -> torch.Tensor:
        """Replace each physical column's value by the maximum over its column tile."""
        ncol = len(self.colcat)
        tile_of = torch.cat([self.col_tile_of.repeat_interleave(self.cpw),
                             torch.arange(self.ref_cols)]).long()
        ntiles = len(self.tiles.col_index)
        m = torch.zeros(per_col.shape[0], ntiles, dtype=per_col.dtype)
        m = m.scatter_reduce(1, tile_of.expand(per_col.shape[0], -1), per_col, reduce="amax")
        assert per_col.shape[1] == ncol * self.cpw + self.ref_cols
        return m[:, tile_of]

    def _calibrate(self, xp, enc, rows, cols, n, nwin) -> list[torch.Tensor]:
        """Calibrated ADC full scale: the largest |column value| per tile over the whole batch."""
        geo = self.tiles.geo
        per_image = enc.steps * nwin * geo.sets * geo.set_rows
        chunk = max(1, _CHUNK_ELEMENTS // max(per_image, 1))
        peaks = [torch.zeros(rt.g.shape[0], rt.g.shape[2], dtype=torch.float64) for rt in self.row_tiles]
        for n0 in range(0, n, chunk):
            xg = self._gather(enc.planes(xp[n0:n0 + chunk]).flatten(0, 1), rows, cols)
            for i, rt in enumerate(self.row_tiles):
                v = self._matmul(xg, rt, enc)
                peaks[i] = torch.maximum(peaks[i], v.abs().amax(dim=(1, 2)).to(torch.float64))
        return [self._tile_max(p) for p in peaks]

    def _recombine(self, v: torch.Tensor, enc: InputEncoding) -> torch.Tensor:
        """Shift-and-add over input steps, slices and differential halves; subtract offset columns.
        ``v`` (S, steps, M, phys) -> (S, M, N) float64 in the layer's column order (colcat)."""
        s, steps, m, _ = v.shape
        ncol = len(self.colcat)
        step_coef = torch.tensor(enc.coefficients, dtype=torch.float64)
        wpart = v[..., : ncol * self.cpw].reshape(s, steps, m, ncol, self.cpw).to(torch.float64)
        if steps == 1 and self.cpw == 1:
            y = wpart[:, 0, :, :, 0] * step_coef[0]
        else:
            coef = step_coef[:, None] * self.coef[None, :]  # (steps, cpw)
            y = torch.einsum("zqmnc,qc->zmn", wpart, coef)
        if self.ref_cols:
            ref = torch.einsum("zqmt,q->zmt", v[..., ncol * self.cpw:].to(torch.float64), step_coef)
            y = y - self.wenc.offset * ref[:, :, self.col_tile_of]
        return y

    def _scatter(self, out: torch.Tensor) -> torch.Tensor:
        """(S, N, windows, set_cols in colcat order) -> (N, OC, Ho, Wo)."""
        t = self.tiles
        geo, plan = t.geo, t.plan
        pr = geo.problem
        s, n = out.shape[:2]
        y = out[..., self.inverse]
        y = y.reshape(s, n, plan.windows_h, plan.windows_w, geo.groups_per_set, geo.a, geo.b, pr.oc)
        y = y.permute(1, 0, 4, 7, 2, 5, 3, 6)  # (N, S, gp, OC, Wh, a, Ww, b)
        y = y.reshape(n, s * geo.groups_per_set * pr.oc, plan.windows_h * geo.a, plan.windows_w * geo.b)
        return y[:, : pr.groups * pr.oc, : plan.out_h, : plan.out_w].contiguous()


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
