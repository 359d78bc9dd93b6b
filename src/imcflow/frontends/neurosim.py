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
from typing import Any, Literal, cast

import numpy as np

from imcflow.errors import ConfigError, FormatError
from imcflow.layers import ConvLayer, Network
from imcflow.validate import check_file

# DNN+NeuroSim ships its NetWork_*.csv files with Windows line endings (V1.3, V1.4 and V2.1:
# Inference_pytorch/NeuroSIM/NetWork_VGG8.csv is 176 bytes for 8 rows of 20-22 characters).
CSV_LINE_ENDING = "\r\n"
COLUMNS = ("IFM_H", "IFM_W", "IC", "Kh", "Kw", "OC", "pool_flag", "stride")
PADDING_CONVENTIONS = ("neurosim", "padded")
GROUP_POLICIES = ("refuse", "expand")
Padding = Literal["neurosim", "padded"]


def _pair(value: tuple[int, int] | int) -> tuple[int, int]:
    # ConvLayer normalises its size fields to pairs when built; this tells the type checker so.
    return value if isinstance(value, tuple) else (value, value)


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


# --- import --------------------------------------------------------------------------------------

def _row_values(raw: list[str], line: int, source: str) -> list[int]:
    if len(raw) not in (7, 8):
        raise FormatError(f"{source}, line {line}: expected 8 comma-separated fields ({', '.join(COLUMNS)}) "
                          f"or 7 (no stride, older NeuroSim files), got {len(raw)}")
    values = []
    for column, text in zip(COLUMNS, raw, strict=False):
        text = text.strip()
        try:
            value = int(text)
        except ValueError:
            raise FormatError(f"{source}, line {line}: field {column} must be an integer, "
                              f"got {text!r}") from None
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
                                    padding=pad, kind=cast(Literal["conv", "linear"], kind)))
        except ConfigError as exc:
            raise FormatError(f"{source}, line {line_no}: {exc}") from None
        pool_flags.append(pool)
    if not layers:
        raise FormatError(f"{source}: no layer rows (the file is empty); expected rows of "
                          f"{', '.join(COLUMNS)}")
    first = layers[0]
    meta = {"neurosim": {"padding": padding, "pool_flags": pool_flags, "columns": sorted(columns)}}
    return Network(name, tuple(layers), input_shape=(first.in_channels, first.H, first.W),
                   source=source, meta=meta)


def read_neurosim_csv(path: str, input_shape: tuple[int, ...] | None = None,
                      padding: Padding = "padded") -> Network:
    """Load a NeuroSim ``NetWork.csv`` file. ``input_shape`` is ignored: the file gives every size.
    A UTF-8 byte-order mark (spreadsheet exports) is accepted, as for YAML files."""
    path = check_file("path", path)
    try:
        with open(path, encoding="utf-8-sig") as fh:
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
        return {"layer": self.layer, **dict(zip(COLUMNS, self.values, strict=False))}


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

    def to_csv(self, line_ending: str = CSV_LINE_ENDING) -> str:
        """The file text: one row per line, each line ended by ``line_ending`` (NeuroSim's own files
        use CRLF, :data:`CSV_LINE_ENDING`)."""
        return "".join(",".join(str(v) for v in r.values) + line_ending for r in self.rows)

    @property
    def neurosim_ops(self) -> int:
        """Operations NeuroSim reports for these rows (``main.cpp``: 2*H*W*IC*Kh*Kw*OC per row, on the
        listed input size - not the output size - so it counts more than the real 2 x MACs)."""
        return sum(2 * r.ifm_h * r.ifm_w * r.ic * r.kh * r.kw * r.oc for r in self.rows)

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
    for layer, nxt in zip(layers, layers[1:] + (None,), strict=False):
        if nxt is None or layer.kind == "linear":
            out.append(0)
            continue
        ho, wo = layer.output_size()
        out.append(int(ho > nxt.H or wo > nxt.W))
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
        if _pair(l.stride)[0] != _pair(l.stride)[1]:
            problems.append(f"{l.name}: stride {l.stride} (NetWork.csv has one stride for both axes)")
        if l.groups > 1 and groups == "refuse":
            problems.append(f"{l.name}: groups={l.groups} (NetWork.csv has no groups column; "
                            f"use groups='expand' / --groups expand for one row per group)")
    if problems:
        raise ConfigError(f"network {network.name!r} cannot be written as NeuroSim NetWork.csv:\n  "
                          + "\n  ".join(problems))
    rows, mismatches = [], []
    for layer, pool in zip(network.layers, _pool_flags(network), strict=False):
        if layer.kind == "linear" and layer.input_size == (1, 1):
            base = dict(ifm_h=1, ifm_w=1, kh=1, kw=1, pool_flag=0, stride=1)
        else:
            extra = _pair(layer.padding) if padding == "padded" else (0, 0)
            base = dict(ifm_h=layer.H + 2 * extra[0], ifm_w=layer.W + 2 * extra[1], kh=layer.Kh,
                        kw=layer.Kw, pool_flag=pool, stride=_pair(layer.stride)[0])
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


def real_ops(network: Network) -> int:
    """2 x the multiply-accumulates the network really performs (output-size windows)."""
    return sum(2 * l.macs for l in network.layers)


def ops_note(network: Network, export: NeuroSimExport) -> str:
    """How NeuroSim's operation count (and so its TOPS, TOPS/W) compares with the real one."""
    ns, real = export.neurosim_ops, real_ops(network)
    return (f"NeuroSim will count {ns / 1e9:.4g} G operations (2*H*W*IC*Kh*Kw*OC on the listed sizes, "
            f"{export.padding} convention) for {real / 1e9:.4g} G real ones (2 x MACs): its TOPS and "
            f"TOPS/W are {ns / real:.3g}x the real figures")




# --- NeuroSim versions: how each release's main is called -----------------------------------------

@dataclass(frozen=True)
class NeuroSimVersion:
    """How one NeuroSim release's ``main`` takes its arguments, and its Python driver's defaults.

    ``leading``: arguments before the network file (V2.x: the epoch number); ``array_args``: the
    release takes ``<subArray> <parallelRead>`` after the bit widths; ``per_layer``: the files (and
    values) given for every layer, in order.
    """

    name: str
    leading: tuple[str, ...]
    array_args: bool
    per_layer: tuple[str, ...]
    sub_array: int
    parallel_read: int
    novel_mapping: bool
    source: str

    def arguments(self, network_file: str, weight_bits: int, input_bits: int,
                  layers: Sequence[dict[str, str]], sub_array: int | None = None,
                  parallel_read: int | None = None, epoch: int = 0) -> list[str]:
        """``main``'s arguments (without the program) for ``layers``: one dict per layer with the
        keys of :attr:`per_layer`."""
        args = [str(epoch)] if self.leading else []
        args += [network_file, str(weight_bits), str(input_bits)]
        if self.array_args:
            args += [str(sub_array or self.sub_array), str(parallel_read or self.parallel_read)]
        for files in layers:
            args += [files[k] for k in self.per_layer]
        return args


NEUROSIM_VERSIONS: dict[str, NeuroSimVersion] = {v.name: v for v in (
    NeuroSimVersion("1.3", (), False, ("weight", "input"), 128, 128, True,
                    "DNN_NeuroSim_V1.3 main.cpp: argv[1] network, argv[2] synapseBit, argv[3] numBitInput, "
                    "then argv[2i+4], argv[2i+5] weight and input file of layer i; utee/hook.py writes "
                    "'./NeuroSIM/main ./NeuroSIM/NetWork_<model>.csv <wl_weight> <wl_activate>'; the "
                    "subarray (numRowSubArray = 128) is set in Param.cpp"),
    NeuroSimVersion("1.4", (), True, ("weight", "input"), 128, 128, True,
                    "DNN_NeuroSim_V1.4 main.cpp: argv[4] numRowSubArray, argv[5] numRowParallel after the "
                    "bit widths, layer files from argv[6]; inference.py defaults --subArray 128 "
                    "--parallelRead 128"),
    NeuroSimVersion("2.x", ("epoch",), False, ("weight", "weight_old", "input", "activity"), 128, 128,
                    True,
                    "DNN_NeuroSim_V2.1 (training) main.cpp: argv[1] epoch, argv[2] network, argv[3] "
                    "synapseBit, argv[4] numBitInput, then weight, old weight, input file and input "
                    "activity of each layer (argv[4i+5..8]); utee/hook.py hardware_evaluation"),
)}


def neurosim_version(name: str) -> NeuroSimVersion:
    """The :class:`NeuroSimVersion` called ``name`` (``1.3``, ``1.4`` or ``2.x``)."""
    try:
        return NEUROSIM_VERSIONS[name]
    except KeyError:
        raise ConfigError(f"NeuroSim version must be one of {', '.join(NEUROSIM_VERSIONS)}, got {name!r}"
                          ) from None


# --- trace files ---------------------------------------------------------------------------------

def unfold_input(layer: ConvLayer, x: np.ndarray, padded: bool = True) -> np.ndarray:
    """im2col of one input ``(IC, H, W)``: ``(IC*Kh*Kw, Ho*Wo)``, rows in ``weight.reshape(OC,-1)``
    order (channel, then kernel row, then kernel column), columns the output pixels row-major.
    ``padded=False`` drops the layer's padding: only the windows inside the raw input, which is what a
    NetWork.csv row in the ``neurosim`` convention describes.

    >>> layer = ConvLayer("c", 1, 1, 2, input_size=3)
    >>> unfold_input(layer, np.arange(9).reshape(1, 3, 3))[:, 0].tolist()
    [0, 1, 3, 4]
    """
    if layer.groups != 1:
        raise ConfigError(f"layer {layer.name!r}: NeuroSim traces need groups=1, got {layer.groups}")
    expected = (layer.in_channels, layer.H, layer.W)
    if tuple(x.shape) != expected:
        raise ConfigError(f"layer {layer.name!r}: input must have shape {expected}, got {tuple(x.shape)}")
    (ph, pw) = _pair(layer.padding) if padded else (0, 0)
    (sh, sw), (dh, dw) = _pair(layer.stride), _pair(layer.dilation)
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    ho = (xp.shape[1] - dh * (layer.Kh - 1) - 1) // sh + 1
    wo = (xp.shape[2] - dw * (layer.Kw - 1) - 1) // sw + 1
    if ho < 1 or wo < 1:
        raise ConfigError(f"layer {layer.name!r}: no window fits the {'padded' if padded else 'raw'} "
                          f"input {xp.shape[1]}x{xp.shape[2]}")
    cols = np.empty((layer.in_channels, layer.Kh, layer.Kw, ho, wo), dtype=x.dtype)
    for i in range(layer.Kh):
        for j in range(layer.Kw):
            cols[:, i, j] = xp[:, i * dh: i * dh + sh * (ho - 1) + 1: sh,
                               j * dw: j * dw + sw * (wo - 1) + 1: sw]
    return cols.reshape(layer.in_channels * layer.Kh * layer.Kw, ho * wo)


def input_bit_matrix(columns: np.ndarray, bits: int, signed: bool = True) -> np.ndarray:
    """NeuroSim's input trace: each value as ``bits`` bits, MSB first; column ``w*bits + b`` holds
    bit b of window w (NeuroSim's ``dec2bin`` layout). ``signed``: two's complement (values in
    ``[-2^(bits-1), 2^(bits-1) - 1]``); otherwise unsigned (``[0, 2^bits - 1]``), which is how NeuroSim
    weighs the bits (its shift-add gives bit b the weight 2^(bits-1-b)).

    >>> input_bit_matrix(np.array([[3], [-1]]), 3).tolist()
    [[0, 1, 1], [1, 1, 1]]
    >>> input_bit_matrix(np.array([[6]]), 3, signed=False).tolist()
    [[1, 1, 0]]
    """
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if columns.size and (columns.min() < lo or columns.max() > hi):
        raise ConfigError(f"input values must lie in [{lo}, {hi}] for {bits}-bit "
                          f"{'signed' if signed else 'unsigned'} inputs, "
                          f"got [{columns.min()}, {columns.max()}]")
    unsigned = np.asarray(columns, dtype=np.int64) & ((1 << bits) - 1)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
    out = (unsigned[:, :, None] >> shifts) & 1
    return out.reshape(columns.shape[0], columns.shape[1] * bits).astype(np.int8)


def _csv_bytes(cells: np.ndarray) -> bytes:
    """A 2-D array of fixed-width ASCII cells (dtype ``uint8``, shape rows x cols x width) as CSV
    bytes, built in one numpy pass (no per-value formatting): the separator after each cell is a
    comma, after the last cell of a row a newline (LF, as NumPy's ``savetxt`` in NeuroSim's
    ``hook.py`` writes them)."""
    rows, cols, width = cells.shape
    out = np.empty((rows, cols, width + 1), dtype=np.uint8)
    out[:, :, :width] = cells
    out[:, :, width] = ord(",")
    out[:, -1, width] = ord("\n")
    return out.tobytes()


def bits_csv(bit_matrix: np.ndarray) -> bytes:
    """The input trace file: 0/1 values separated by commas, one row per line.

    >>> bits_csv(np.array([[0, 1], [1, 1]]))
    b'0,1\\n1,1\\n'
    """
    m = np.asarray(bit_matrix)
    if m.ndim != 2 or m.size == 0:
        raise ConfigError(f"a trace bit matrix must be 2-D and non-empty, got shape {m.shape}")
    return _csv_bytes((m.astype(np.uint8) + ord("0"))[:, :, None])


def weights_csv(weight_matrix: np.ndarray, weight_bits: int) -> bytes:
    """The weight trace file: integers ``q`` written as ``q / 2^(weight_bits-1)`` (NeuroSim's [-1, 1)
    range) with ``weight_bits - 1`` decimals, which is exact, in fixed width.

    >>> weights_csv(np.array([[1, -2], [0, 3]]), 3)
    b' 0.25,-0.50\\n 0.00, 0.75\\n'
    """
    m = np.asarray(weight_matrix, dtype=np.int64)
    lim = 1 << (weight_bits - 1)
    if m.size and (m.min() < -lim or m.max() >= lim):
        raise ConfigError(f"weights must lie in [{-lim}, {lim - 1}] for {weight_bits}-bit weights, got "
                          f"[{m.min()}, {m.max()}]")
    decimals = weight_bits - 1
    # Every possible value formatted once; the matrix indexes this table.
    table_text = [f"{v / lim:{decimals + 3}.{decimals}f}" for v in range(-lim, lim)]
    width = max(len(t) for t in table_text)
    table = np.frombuffer("".join(t.rjust(width) for t in table_text).encode("ascii"),
                          dtype=np.uint8).reshape(2 * lim, width)
    return _csv_bytes(table[m + lim])


@dataclass(frozen=True)
class NeuroSimTrace:
    """The trace files NeuroSim's ``main`` reads for one layer, and the integer result they encode.

    ``weight_matrix``: ``(Kh*Kw*IC, OC)`` = ``weight.reshape(OC, -1).T`` (integers; the weight file
    holds them divided by 2^(weight_bits-1), NeuroSim's [-1, 1) range). ``input_columns``: the
    unfolded integer input ``(Kh*Kw*IC, windows)``; its bits are the input file. ``row`` is the layer's
    NetWork.csv row (pool flag included) in the convention (``padding``) the columns were unfolded in:
    its NeuroSim window count equals the number of columns (checked when built).
    """

    layer: ConvLayer
    row: NeuroSimRow
    weight_matrix: np.ndarray = field(compare=False)
    input_columns: np.ndarray = field(compare=False)
    weight_bits: int = 8
    input_bits: int = 8
    signed_inputs: bool = True
    padding: str = "padded"

    def __post_init__(self) -> None:
        windows = self.input_columns.shape[1]
        if windows != self.row.neurosim_windows:
            raise ConfigError(
                f"layer {self.layer.name!r}: the input trace has {windows} windows but its NetWork.csv row "
                f"{','.join(map(str, self.row.values))} makes NeuroSim read {self.row.neurosim_windows} "
                f"(int((H-Kh+1)/s*(W-Kw+1)/s)); a trace and a row in different conventions "
                f"({self.padding!r} here) are refused, since NeuroSim would silently read the wrong windows")

    @property
    def bit_matrix(self) -> np.ndarray:
        return input_bit_matrix(self.input_columns, self.input_bits, self.signed_inputs)

    @property
    def input_bit_density(self) -> float:
        """Fraction of 1 bits in the input file (NeuroSim V2.x's per-layer 'activity')."""
        bits = self.bit_matrix
        return float(bits.mean()) if bits.size else 0.0

    def expected_output(self) -> np.ndarray:
        """``(OC, windows)`` integer products the traced crossbar computes."""
        return self.weight_matrix.T.astype(np.int64) @ self.input_columns.astype(np.int64)

    def file_names(self, prefix: str = "") -> dict[str, str]:
        safe = self.layer.name.replace("/", "_").replace(" ", "_")
        return {"network": f"{prefix}NetWork_{safe}.csv", "weight": f"{prefix}weight_{safe}.csv",
                "weight_old": f"{prefix}weight_{safe}.csv", "input": f"{prefix}input_{safe}.csv",
                "command": f"{prefix}trace_command_{safe}.sh"}

    def command(self, prefix: str = "", neurosim: str = "./NeuroSIM/main", version: str = "1.4",
                sub_array: int | None = None, parallel_read: int | None = None) -> str:
        """The command line running this one layer (files in the current directory)."""
        names = self.file_names(prefix)
        names["activity"] = f"{self.input_bit_density:.6f}"
        args = neurosim_version(version).arguments(names["network"], self.weight_bits, self.input_bits,
                                                   [names], sub_array, parallel_read)
        return " ".join([neurosim, *args])

    def data_files(self, prefix: str = "") -> dict[str, bytes]:
        """The weight and input trace files of this layer."""
        names = self.file_names(prefix)
        return {names["weight"]: weights_csv(self.weight_matrix, self.weight_bits),
                names["input"]: bits_csv(self.bit_matrix)}

    def files(self, prefix: str = "", version: str = "1.4", sub_array: int | None = None,
              parallel_read: int | None = None) -> dict[str, bytes]:
        """File name -> bytes, ready to write: a one-row NetWork.csv (checked against NeuroSim's floor
        plan), the weight and input traces and a shell script with the command line."""
        from imcflow.cost.neurosim_floorplan import FloorplanSettings, check_floorplan

        v = neurosim_version(version)
        check_floorplan([self.row.values], FloorplanSettings(sub_array or v.sub_array, self.weight_bits),
                        where=f"one-layer network of {self.layer.name!r}")
        names = self.file_names(prefix)
        script = run_script(self.command(prefix, "$NEUROSIM", version, sub_array, parallel_read), version)
        return {names["network"]: (",".join(map(str, self.row.values)) + CSV_LINE_ENDING).encode(),
                **self.data_files(prefix), names["command"]: script.encode()}


def run_script(command: str, version: str) -> str:
    """A POSIX shell script that runs ``command`` from the directory holding it."""
    return ("#!/bin/sh\n"
            f"# DNN+NeuroSim V{version} argument order ({neurosim_version(version).source}).\n"
            "# Set NEUROSIM to its compiled main (default ./NeuroSIM/main).\n"
            "NEUROSIM=\"${NEUROSIM:-./NeuroSIM/main}\"\n"
            "cd \"$(dirname \"$0\")\" || exit 1\n"
            f"exec {command}\n")


def _network_row(network: Network | None, layer: ConvLayer, padding: Padding) -> NeuroSimRow:
    if network is not None:
        for row, l in zip(neurosim_rows(network, padding).rows, network.layers, strict=False):
            if l.name == layer.name:
                return row
    return neurosim_rows(Network("trace", (layer,)), padding).rows[0]


def neurosim_trace(layer: ConvLayer, weight: np.ndarray, x: np.ndarray, weight_bits: int = 8,
                   input_bits: int = 8, padding: Padding = "padded",
                   network: Network | None = None) -> NeuroSimTrace:
    """Trace of one layer for integer ``weight`` ``(OC, IC, Kh, Kw)`` (or ``(OC, IC)`` for linear) and
    integer input ``x`` ``(IC, H, W)`` (or ``(IC,)``).

    ``padding="padded"`` (default) unfolds with the layer's real padding, stride and dilation and writes
    the row as ``H + 2p``; ``"neurosim"`` writes the raw size and unfolds without padding (only the
    windows NeuroSim counts on it). Either way the row's window count equals the trace's columns, or
    the trace is refused. ``network`` (the layer's network) supplies the row's pool flag."""
    _check_choice("padding", padding, PADDING_CONVENTIONS)
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
        raise ConfigError(f"layer {layer.name!r}: weight must have shape {expected}, "
                          f"got {tuple(weight.shape)}")
    wlim = (1 << (weight_bits - 1)) - 1
    if weight.size and np.abs(weight).max() > wlim:
        raise ConfigError(f"layer {layer.name!r}: weights must lie in [-{wlim}, {wlim}] for "
                          f"{weight_bits}-bit weights, got max |w| = {np.abs(weight).max()}")
    row = _network_row(network, layer, padding)
    columns = unfold_input(layer, x, padded=padding == "padded")
    signed = bool(columns.size and columns.min() < 0)
    return NeuroSimTrace(layer, row, weight.reshape(layer.out_channels, -1).T.copy(), columns,
                         weight_bits, input_bits, signed, padding)


def random_trace(layer: ConvLayer, seed: int = 0, weight_bits: int = 8, input_bits: int = 8,
                 padding: Padding = "padded", network: Network | None = None) -> NeuroSimTrace:
    """A trace with seeded random integer weights (signed) and inputs (non-negative, as after ReLU)."""
    rng = np.random.default_rng(seed)
    wlim = (1 << (weight_bits - 1)) - 1
    weight = rng.integers(-wlim, wlim + 1, size=(layer.out_channels, layer.in_channels, layer.Kh, layer.Kw))
    x = rng.integers(0, 1 << (input_bits - 1), size=(layer.in_channels, layer.H, layer.W))
    return neurosim_trace(layer, weight, x, weight_bits, input_bits, padding, network)


@dataclass(frozen=True)
class NeuroSimTraceSet:
    """Every layer's traces of one network, its NetWork.csv (same convention) and the run script."""

    network: Network
    export: NeuroSimExport
    traces: tuple[NeuroSimTrace, ...]
    version: str = "1.4"
    sub_array: int | None = None
    parallel_read: int | None = None

    def __post_init__(self) -> None:
        if len(self.traces) != len(self.export.rows):
            raise ConfigError(f"network {self.network.name!r}: {len(self.traces)} traces for "
                              f"{len(self.export.rows)} NetWork.csv rows")
        for t, row in zip(self.traces, self.export.rows, strict=False):
            if t.row != row or t.padding != self.export.padding:
                raise ConfigError(f"layer {t.layer.name!r}: its trace row {t.row.values} ({t.padding}) "
                                  f"differs from the network's row {row.values} ({self.export.padding}); "
                                  f"a mix of conventions is refused")
        from imcflow.cost.neurosim_floorplan import FloorplanSettings, check_floorplan

        v = neurosim_version(self.version)
        check_floorplan([r.values for r in self.export.rows],
                        FloorplanSettings(self.sub_array or v.sub_array, self.traces[0].weight_bits),
                        where=f"network {self.network.name!r}")

    @property
    def network_file(self) -> str:
        return f"NetWork_{self.network.name}.csv"

    def command(self, neurosim: str = "$NEUROSIM") -> str:
        layers = []
        for t in self.traces:
            names = t.file_names()
            names["activity"] = f"{t.input_bit_density:.6f}"
            layers.append(names)
        t0 = self.traces[0]
        args = neurosim_version(self.version).arguments(self.network_file, t0.weight_bits, t0.input_bits,
                                                        layers, self.sub_array, self.parallel_read)
        return " ".join([neurosim, *args])

    def files(self) -> dict[str, bytes]:
        """File name -> bytes: NetWork_<net>.csv, every layer's weight and input file, run_neurosim.sh."""
        out = {self.network_file: self.export.to_csv().encode()}
        for t in self.traces:
            out.update(t.data_files())
        out["run_neurosim.sh"] = run_script(self.command(), self.version).encode()
        return out

    def summary(self) -> dict[str, Any]:
        return {"network": self.network.name, "padding": self.export.padding, "version": self.version,
                "neurosim_ops": self.export.neurosim_ops, "real_ops": real_ops(self.network),
                "layers": [{"layer": t.layer.name, "row": list(t.row.values),
                            "windows": int(t.input_columns.shape[1]),
                            "input_bit_density": t.input_bit_density,
                            "zero_inputs": float((t.input_columns == 0).mean()),
                            "signed_inputs": t.signed_inputs} for t in self.traces]}
