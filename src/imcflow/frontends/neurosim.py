"""NeuroSim's ``NetWork.csv`` (import and export) and its per-layer trace files (export).

The format (DNN+NeuroSim V1.x): no header, one row per weight layer in order, columns
``IFM_H, IFM_W, IC, Kh, Kw, OC, pool_flag, stride``; files from older releases have 7 columns (no
stride, meaning 1). Fully connected layers are written ``1,1,IC,1,1,OC,0,1``.

NeuroSim does not model padding: it counts windows as ``int((H-Kh+1)/s * (W-Kw+1)/s)`` on the listed
size. Two conventions therefore exist for ``IFM_H``/``IFM_W``:

* ``neurosim``: the raw (unpadded) input size, as NeuroSim's own files list it. On import, each layer
  gets PyTorch's usual "same" padding back, ``p = (K-1)//2``.
* ``padded``: ``H + 2p``, so the file's window count is the real one. On import the size is taken as
  written with no padding - which is also exactly what NeuroSim itself computes for stride 1.

Import records the convention used in ``Network.meta["neurosim"]``. The format cannot express groups,
dilation or unequal strides: export refuses such layers with a message naming them (grouped layers can
instead be expanded into one row per group). ``pool_flag`` is set on export when the next layer's input
is smaller than this layer's output (a pooling layer sits between them).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from imcflow.errors import ConfigError, FormatError
from imcflow.layers import ConvLayer, Network

COLUMNS = ("IFM_H", "IFM_W", "IC", "Kh", "Kw", "OC", "pool_flag", "stride")
PADDING_CONVENTIONS = ("neurosim", "padded")
GROUP_POLICIES = ("refuse", "expand")
Padding = Literal["neurosim", "padded"]


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


# --- import --------------------------------------------------------------------------------------

def _row_values(raw: list[str], line: int, source: str) -> list[int]:
    if len(raw) not in (7, 8):
        raise FormatError(f"{source}, line {line}: expected 8 comma-separated fields ({', '.join(COLUMNS)}) "
                          f"or 7 (no stride, older NeuroSim files), got {len(raw)}")
    values = []
    for column, text in zip(COLUMNS, raw):
        text = text.strip()
        try:
            value = int(text)
        except ValueError:
            raise FormatError(f"{source}, line {line}: field {column} must be an integer, got {text!r}") from None
        minimum = 0 if column == "pool_flag" else 1
        if value < minimum or (column == "pool_flag" and value > 1):
            allowed = "0 or 1" if column == "pool_flag" else ">= 1"
            raise FormatError(f"{source}, line {line}: field {column} must be {allowed}, got {value}")
        values.append(value)
    if len(values) == 7:
        values.append(1)
    return values


def parse_neurosim_csv(text: str, source: str = "<NetWork.csv>", padding: Padding = "padded",
                       name: str = "network") -> Network:
    """Parse NetWork.csv text into a :class:`Network` (see the module docstring for ``padding``).

    >>> net = parse_neurosim_csv("32,32,3,3,3,16,1,1\\n1,1,4096,1,1,10,0,1\\n", padding="neurosim")
    >>> net.layers[0].padding, net.layers[0].output_size(), net.layers[1].kind
    ((1, 1), (32, 32), 'linear')
    """
    _check_choice("padding", padding, PADDING_CONVENTIONS)
    layers, pool_flags, columns = [], [], set()
    counts = {"conv": 0, "linear": 0}
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        raw = stripped.split(",")
        if len(raw) > 1 and not raw[-1].strip():
            raw = raw[:-1]  # a trailing comma (spreadsheet exports) is not a field
        columns.add(len(raw))
        h, w, ic, kh, kw, oc, pool, stride = _row_values(raw, line_no, source)
        kind = "linear" if (h, w, kh, kw) == (1, 1, 1, 1) else "conv"
        counts[kind] += 1
        layer_name = f"{'fc' if kind == 'linear' else 'conv'}{counts[kind]}"
        pad = ((kh - 1) // 2, (kw - 1) // 2) if padding == "neurosim" else (0, 0)
        try:
            layers.append(ConvLayer(layer_name, ic, oc, (kh, kw), input_size=(h, w), stride=stride,
                                    padding=pad, kind=kind))
        except ConfigError as exc:
            raise FormatError(f"{source}, line {line_no}: {exc}") from None
        pool_flags.append(pool)
    if not layers:
        raise FormatError(f"{source}: no layer rows (the file is empty); expected rows of "
                          f"{', '.join(COLUMNS)}")
    first = layers[0]
    meta = {"neurosim": {"padding": padding, "pool_flags": pool_flags, "columns": sorted(columns)}}
    return Network(name, tuple(layers), input_shape=(first.in_channels, *first.input_size),
                   source=source, meta=meta)


def read_neurosim_csv(path: str, input_shape: tuple[int, ...] | None = None,
                      padding: Padding = "padded") -> Network:
    """Load a NeuroSim ``NetWork.csv`` file. ``input_shape`` is ignored: the file gives every size."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not a text file (expected NeuroSim NetWork.csv rows)") from None
    return parse_neurosim_csv(text, source=path, padding=padding,
                              name=os.path.splitext(os.path.basename(path))[0])


# --- export --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NeuroSimRow:
    """One NetWork.csv row and the layer (or group of a layer) it came from."""

    layer: str
    ifm_h: int
    ifm_w: int
    ic: int
    kh: int
    kw: int
    oc: int
    pool_flag: int
    stride: int

    @property
    def values(self) -> tuple[int, ...]:
        return (self.ifm_h, self.ifm_w, self.ic, self.kh, self.kw, self.oc, self.pool_flag, self.stride)

    @property
    def neurosim_windows(self) -> int:
        """Windows NeuroSim counts for this row: int((H-Kh+1)/s * (W-Kw+1)/s)."""
        return int((self.ifm_h - self.kh + 1) / self.stride * (self.ifm_w - self.kw + 1) / self.stride)

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, **dict(zip(COLUMNS, self.values))}


@dataclass(frozen=True)
class NeuroSimExport:
    """A network as NetWork.csv rows, with notes on what NeuroSim will count differently."""

    network: str
    padding: str
    rows: tuple[NeuroSimRow, ...]
    # (layer, windows NeuroSim counts, real windows) where the two differ
    window_mismatches: tuple[tuple[str, int, int], ...] = ()

    @property
    def notes(self) -> tuple[str, ...]:
        if not self.window_mismatches:
            return ()
        name, ns, real = self.window_mismatches[0]
        hint = " (raw sizes: use padding 'padded' for the real counts)" if self.padding == "neurosim" else ""
        return (f"{len(self.window_mismatches)} of {len(self.rows)} rows: NeuroSim counts other window "
                f"numbers than the layers have{hint}; e.g. {name}: {ns} vs {real}",)

    def to_csv(self) -> str:
        return "".join(",".join(str(v) for v in r.values) + "\n" for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"network": self.network, "padding": self.padding, "rows": [r.to_dict() for r in self.rows],
                "window_mismatches": [{"layer": n, "neurosim": a, "real": b}
                                      for n, a, b in self.window_mismatches]}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([r.to_dict() for r in self.rows])


def _pool_flags(network: Network) -> list[int]:
    meta = network.meta.get("neurosim", {})
    flags = meta.get("pool_flags")
    if flags is not None and len(flags) == len(network.layers):
        return list(flags)  # an imported NeuroSim file keeps its own flags
    layers = network.layers
    out = []
    for layer, nxt in zip(layers, layers[1:] + (None,)):
        if nxt is None or layer.kind == "linear":
            out.append(0)
            continue
        ho, wo = layer.output_size()
        out.append(int(nxt.input_size[0] < ho or nxt.input_size[1] < wo))
    return out


def neurosim_rows(network: Network, padding: Padding = "neurosim", groups: str = "refuse") -> NeuroSimExport:
    """Rows of ``network`` in NeuroSim's format.

    ``padding``: ``neurosim`` writes the raw input size, ``padded`` writes ``H + 2p``.
    ``groups``: ``refuse`` (grouped layers are an error) or ``expand`` (one row per group).

    >>> from imcflow.layers import ConvLayer, Network
    >>> net = Network("n", (ConvLayer("c1", 3, 8, 3, input_size=32, padding=1),
    ...                     ConvLayer("c2", 8, 8, 3, input_size=16, padding=1)))
    >>> [r.values for r in neurosim_rows(net, "padded").rows]
    [(34, 34, 3, 3, 3, 8, 1, 1), (18, 18, 8, 3, 3, 8, 0, 1)]
    """
    _check_choice("padding", padding, PADDING_CONVENTIONS)
    _check_choice("groups", groups, GROUP_POLICIES)
    problems = []
    for l in network.layers:
        if l.dilation != (1, 1):
            problems.append(f"{l.name}: dilation {l.dilation} (NetWork.csv has no dilation column)")
        if l.stride[0] != l.stride[1]:
            problems.append(f"{l.name}: stride {l.stride} (NetWork.csv has one stride for both axes)")
        if l.groups > 1 and groups == "refuse":
            problems.append(f"{l.name}: groups={l.groups} (NetWork.csv has no groups column; "
                            f"use groups='expand' / --groups expand for one row per group)")
    if problems:
        raise ConfigError(f"network {network.name!r} cannot be written as NeuroSim NetWork.csv:\n  "
                          + "\n  ".join(problems))
    rows, mismatches = [], []
    for layer, pool in zip(network.layers, _pool_flags(network)):
        if layer.kind == "linear" and layer.input_size == (1, 1):
            base = dict(ifm_h=1, ifm_w=1, kh=1, kw=1, pool_flag=0, stride=1)
        else:
            extra = layer.padding if padding == "padded" else (0, 0)
            base = dict(ifm_h=layer.H + 2 * extra[0], ifm_w=layer.W + 2 * extra[1], kh=layer.Kh,
                        kw=layer.Kw, pool_flag=pool, stride=layer.stride[0])
        for g in range(layer.groups):
            last = g == layer.groups - 1
            row = NeuroSimRow(layer=layer.name if layer.groups == 1 else f"{layer.name}[g{g}]",
                              ic=layer.group_in_channels, oc=layer.group_out_channels,
                              **{**base, "pool_flag": base["pool_flag"] if last else 0})
            rows.append(row)
        ho, wo = layer.output_size()
        if rows[-1].neurosim_windows != ho * wo:
            mismatches.append((layer.name, rows[-1].neurosim_windows, ho * wo))
    return NeuroSimExport(network.name, padding, tuple(rows), tuple(mismatches))


def network_to_neurosim_csv(network: Network, padding: Padding = "neurosim", groups: str = "refuse") -> str:
    return neurosim_rows(network, padding, groups).to_csv()


# --- trace files ---------------------------------------------------------------------------------

def unfold_input(layer: ConvLayer, x: np.ndarray) -> np.ndarray:
    """im2col of one input ``(IC, H, W)``: ``(IC*Kh*Kw, Ho*Wo)``, rows in ``weight.reshape(OC,-1)``
    order (channel, then kernel row, then kernel column), columns the output pixels row-major.

    >>> layer = ConvLayer("c", 1, 1, 2, input_size=3)
    >>> unfold_input(layer, np.arange(9).reshape(1, 3, 3))[:, 0].tolist()
    [0, 1, 3, 4]
    """
    if layer.groups != 1:
        raise ConfigError(f"layer {layer.name!r}: NeuroSim traces need groups=1, got {layer.groups}")
    expected = (layer.in_channels, *layer.input_size)
    if tuple(x.shape) != expected:
        raise ConfigError(f"layer {layer.name!r}: input must have shape {expected}, got {tuple(x.shape)}")
    (ph, pw), (sh, sw), (dh, dw) = layer.padding, layer.stride, layer.dilation
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    ho, wo = layer.output_size()
    cols = np.empty((layer.in_channels, layer.Kh, layer.Kw, ho, wo), dtype=x.dtype)
    for i in range(layer.Kh):
        for j in range(layer.Kw):
            cols[:, i, j] = xp[:, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]
    return cols.reshape(layer.in_channels * layer.Kh * layer.Kw, ho * wo)


def input_bit_matrix(columns: np.ndarray, bits: int) -> np.ndarray:
    """NeuroSim's input trace: each value as ``bits`` two's-complement bits, MSB (sign) first;
    column ``w*bits + b`` holds bit b of window w (NeuroSim's ``dec2bin`` layout).

    >>> input_bit_matrix(np.array([[3], [-1]]), 3).tolist()
    [[0, 1, 1], [1, 1, 1]]
    """
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if columns.size and (columns.min() < lo or columns.max() > hi):
        raise ConfigError(f"input values must lie in [{lo}, {hi}] for {bits}-bit inputs, "
                          f"got [{columns.min()}, {columns.max()}]")
    unsigned = np.asarray(columns, dtype=np.int64) & ((1 << bits) - 1)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
    out = (unsigned[:, :, None] >> shifts) & 1
    return out.reshape(columns.shape[0], columns.shape[1] * bits).astype(np.int8)


@dataclass(frozen=True)
class NeuroSimTrace:
    """The trace files NeuroSim's ``main`` reads for one layer, and the integer result they encode.

    ``weight_matrix``: ``(Kh*Kw*IC, OC)`` = ``weight.reshape(OC, -1).T`` (integers; the weight file
    holds them divided by 2^(weight_bits-1), NeuroSim's [-1, 1) range). ``input_columns``: the
    unfolded integer input ``(Kh*Kw*IC, windows)``; its bits are the input file.
    """

    layer: ConvLayer
    row: NeuroSimRow
    weight_matrix: np.ndarray = field(compare=False)
    input_columns: np.ndarray = field(compare=False)
    weight_bits: int = 8
    input_bits: int = 8

    @property
    def bit_matrix(self) -> np.ndarray:
        return input_bit_matrix(self.input_columns, self.input_bits)

    def expected_output(self) -> np.ndarray:
        """``(OC, windows)`` integer products the traced crossbar computes."""
        return self.weight_matrix.T.astype(np.int64) @ self.input_columns.astype(np.int64)

    def command(self, prefix: str = "", neurosim: str = "./NeuroSIM/main", version: str = "1.3",
                sub_array: int = 128, parallel_read: int = 64) -> str:
        """The NeuroSim command line for these files, run in the directory holding them: V1.3 takes
        ``main NetWork.csv <weight bits> <input bits>`` then a weight/input file pair per row; V1.4
        adds ``<subArray> <parallelRead>`` after the bit widths."""
        files = self.file_names(prefix)
        args = [neurosim, files["network"], str(self.weight_bits), str(self.input_bits)]
        if version != "1.3":
            args += [str(sub_array), str(parallel_read)]
        return " ".join(args + [files["weight"], files["input"]])

    def file_names(self, prefix: str = "") -> dict[str, str]:
        safe = self.layer.name.replace("/", "_").replace(" ", "_")
        return {"network": f"{prefix}NetWork_{safe}.csv", "weight": f"{prefix}weight_{safe}.csv",
                "input": f"{prefix}input_{safe}.csv", "command": f"{prefix}trace_command_{safe}.sh"}

    def files(self, prefix: str = "") -> dict[str, str]:
        """File name -> text, ready to write: a one-row NetWork.csv, the weight and input traces and
        a shell script with the command line."""
        names = self.file_names(prefix)
        scale = float(1 << (self.weight_bits - 1))
        weights = "\n".join(",".join(f"{v / scale:.8g}" for v in row) for row in self.weight_matrix)
        bits = "\n".join(",".join(str(int(v)) for v in row) for row in self.bit_matrix)
        script = ("#!/bin/sh\n# Run in this directory; NEUROSIM is DNN+NeuroSim's compiled main (V1.3 order).\n"
                  "# V1.4 adds <subArray> <parallelRead> after the bit widths:\n"
                  f"#   {self.command(prefix, '$NEUROSIM', version='1.4')}\n"
                  f"cd \"$(dirname \"$0\")\"\n{self.command(prefix, '${NEUROSIM:-./NeuroSIM/main}')}\n")
        return {names["network"]: ",".join(map(str, self.row.values)) + "\n",
                names["weight"]: weights + "\n", names["input"]: bits + "\n", names["command"]: script}


def neurosim_trace(layer: ConvLayer, weight: np.ndarray, x: np.ndarray, weight_bits: int = 8,
                   input_bits: int = 8) -> NeuroSimTrace:
    """Trace of one layer for integer ``weight`` ``(OC, IC, Kh, Kw)`` (or ``(OC, IC)`` for linear) and
    integer input ``x`` ``(IC, H, W)`` (or ``(IC,)``).

    The input is unfolded with the layer's real padding, stride and dilation, and the one-row
    NetWork.csv uses the ``padded`` convention, so NeuroSim's window count (for stride 1) equals the
    number of input columns in the trace."""
    weight = np.asarray(weight)
    x = np.asarray(x)
    if layer.groups != 1:
        raise ConfigError(f"layer {layer.name!r}: NeuroSim traces need groups=1, got {layer.groups}")
    expected = (layer.out_channels, layer.in_channels, layer.Kh, layer.Kw)
    if weight.ndim == 2 and layer.Kh == layer.Kw == 1:
        weight = weight.reshape(expected)
    if x.ndim == 1 and layer.input_size == (1, 1):
        x = x.reshape(-1, 1, 1)
    if tuple(weight.shape) != expected:
        raise ConfigError(f"layer {layer.name!r}: weight must have shape {expected}, got {tuple(weight.shape)}")
    wlim = (1 << (weight_bits - 1)) - 1
    if weight.size and np.abs(weight).max() > wlim:
        raise ConfigError(f"layer {layer.name!r}: weights must lie in [-{wlim}, {wlim}] for "
                          f"{weight_bits}-bit weights, got max |w| = {np.abs(weight).max()}")
    row = neurosim_rows(Network("trace", (layer,)), "padded").rows[0]
    return NeuroSimTrace(layer, row, weight.reshape(layer.out_channels, -1).T.copy(),
                         unfold_input(layer, x), weight_bits, input_bits)


def random_trace(layer: ConvLayer, seed: int = 0, weight_bits: int = 8, input_bits: int = 8) -> NeuroSimTrace:
    """A trace with seeded random integer weights (signed) and inputs (non-negative, as after ReLU)."""
    rng = np.random.default_rng(seed)
    wlim = (1 << (weight_bits - 1)) - 1
    weight = rng.integers(-wlim, wlim + 1, size=(layer.out_channels, layer.in_channels, layer.Kh, layer.Kw))
    x = rng.integers(0, 1 << (input_bits - 1), size=(layer.in_channels, *layer.input_size))
    return neurosim_trace(layer, weight, x, weight_bits, input_bits)
