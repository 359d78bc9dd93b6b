"""A chip-level cost model in NeuroSim's terms: arrays and ADCs plus buffers, interconnect, leakage and
weight duplication, calibrated to DNN+NeuroSim (torch-free).

The crossbar cost model (:mod:`imcflow.cost.model`) prices the events of one mapped layer on its
arrays. A chip also moves every input and partial sum through buffers and a global bus, leaks while it
waits, and (pipelined) copies the weights of its early layers so they keep pace. This module adds
those terms on NeuroSim's own floor plan (:mod:`imcflow.cost.neurosim_floorplan`), per layer:

* **array + ADC** (``core``): every input bit drives one read of each activated subarray, whose
  ``A`` columns share ``A / numColMuxed`` sense amplifiers / ADCs, so a window takes
  ``B x numColMuxed`` clock cycles; ``speed_up`` copies of the weights split the windows
  (``N x B x numColMuxed / speed_up`` cycles). Conversions = ``N x B x (row subarrays) x (column
  subarrays) x A``; each costs a fixed part (precharge, sense amplifier, reference) plus a part
  proportional to the bit-line current, i.e. to the fraction of the subarray's rows that are used
  and the input bit density (activity-dependent energy: pass the traces' measured density).
* **accumulation**: one shift-add per conversion; partial sums of the ``r`` row subarrays of a column
  meet in an adder tree of ``ceil(log2 r)`` stages per window.
* **buffers** (register files, one line per clock): per window, a tile reads its new inputs
  (``rows x B``; a novel-mapped tile, whose PEs hold one kernel position each, takes ``IC x Kw x B``)
  and writes its partial sums (``columns x psum bits``); the global buffer streams the layer's inputs
  and (pooled) outputs. Each stream moves ``width`` bits per cycle.
* **interconnect**: NeuroSim's global X-Y bus is the sum of the tiles' interfaces, halved until it is
  at most ``maxGlobalBusWidth``; the layer's share of it is its fraction of tile rows (inputs) and
  columns (outputs); each transfer costs a few cycles of wire delay, plus a fixed latency per layer.
  Energy: toggled bits (NeuroSim's ``inputtoggle`` / ``outputtoggle``) x (global bus + per-tile
  fan-out) energy per bit.
* **leakage**: leakage power per tile x tiles x time (pipelined: the pipeline cycle).

Latency is in NeuroSim's synchronous clock (``clock_period_s``). Network latency: layer by layer, the
sum; pipelined, the slowest layer (one image per pipeline cycle). Operation counts are reported both
ways: NeuroSim's ``2 x H x W x IC x Kh x Kw x OC`` on the listed input size and the real ``2 x MACs``.

The constants live in ``imcflow/hardware/periphery/<name>.yaml``, each ``{value, source}``: NeuroSim's
own parameters (``Param.cpp``), its floor-plan rules, or a fit to the reference logs made by
``scripts/calibrate_neurosim.py`` (the source says which).
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from imcflow.cost.neurosim_floorplan import Floorplan, FloorplanSettings, LayerPlacement, plan_floor
from imcflow.errors import ConfigError, FormatError, UnknownNameError

# key -> meaning (units in the names). Every key is required.
CONSTANTS: dict[str, str] = {
    "clock_period_s": "synchronous clock period (NeuroSim sets it to the slowest sensing path)",
    "sub_array": "subarray rows = columns",
    "col_mux": "columns sharing one sense amplifier / ADC (numColMuxed)",
    "adc_bits": "ADC (multilevel sense amplifier) resolution, log2(levelOutput)",
    "cell_bits": "bits per cell",
    "parallel_read_rows": "rows read in parallel",
    "cell_read_energy_j": "energy of one cell read by an input 1 bit (device current x read pulse); "
                          "SRAM: inside the ADC's current-dependent part",
    "adc_energy_fixed_j": "ADC energy per conversion, current-independent part",
    "adc_energy_current_j": "ADC energy per conversion at all rows used and every input bit 1",
    "shift_add_energy_j": "accumulation energy per conversion (shift-add and adder trees)",
    "periphery_energy_fixed_j": "decoder, mux and switch-matrix energy per conversion, fixed part",
    "periphery_energy_current_j": "the same, part proportional to rows used x input bit density",
    "adder_stage_cycles": "clock cycles of one partial-sum adder-tree stage per window",
    "tile_input_width_nm_bits": "bits per cycle into a novel-mapped tile's input buffer",
    "tile_output_width_nm_bits": "bits per cycle out of a novel-mapped tile's output buffer",
    "tile_input_width_cm_bits": "bits per cycle into a conventional tile's input buffer",
    "tile_output_width_cm_bits": "bits per cycle out of a conventional tile's output buffer",
    "global_buffer_width_bits": "bits per cycle through the global buffer",
    "max_global_bus_bits": "upper bound of the global bus width (maxGlobalBusWidth)",
    "bus_input_cycles": "clock cycles per input transfer on the global bus",
    "bus_output_cycles": "clock cycles per output transfer on the global bus",
    "bus_layer_cycles": "fixed global-bus cycles per layer",
    "input_toggle": "toggle rate of input bits on the bus (inputtoggle)",
    "output_toggle": "toggle rate of output bits on the bus (outputtoggle)",
    "bus_energy_input_j": "global-bus energy per toggled input bit",
    "bus_energy_output_j": "global-bus energy per toggled output bit",
    "bus_fanout_energy_input_j": "energy per toggled input bit per column tile it reaches",
    "bus_fanout_energy_output_j": "energy per toggled output bit per row tile it leaves",
    "buffer_energy_per_bit_j": "energy per bit through the global buffer",
    "leakage_per_tile_w": "leakage power of one tile",
    "cell_area_mm2": "memory cell area",
    "adc_area_mm2": "area of one ADC / sense amplifier with its mux",
    "accumulation_area_per_subarray_mm2": "shift-add and adder-tree area per subarray",
    "periphery_area_per_subarray_mm2": "decoder, driver and switch-matrix area per subarray",
    "interconnect_area_per_tile_mm2": "bus and H-tree area per tile",
    "reference_input_density": "input bit density of the calibration traces",
    "post_layout_energy_factor": "energy factor NeuroSim divides its TOPS/W by (zeta, validated mode)",
}
_INT_KEYS = {"sub_array", "col_mux", "adc_bits", "cell_bits", "parallel_read_rows", "max_global_bus_bits"}


@dataclass(frozen=True)
class ChipModel:
    """Validated constants of one NeuroSim-style chip (see :data:`CONSTANTS`), with sources."""

    name: str
    description: str
    source: str
    values: Mapping[str, float] = field(hash=False)
    sources: Mapping[str, str] = field(hash=False)

    def __getitem__(self, key: str) -> float:
        return self.values[key]

    def integer(self, key: str) -> int:
        """A count constant (subarray size, bits, ...) as an int (validated integral on load)."""
        return int(self.values[key])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "source": self.source,
                "constants": {k: {"value": v, "source": self.sources[k]} for k, v in self.values.items()}}


def chip_model_dir() -> str:
    return str(resources.files("imcflow.hardware") / "periphery")


def chip_model_names() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(chip_model_dir()) if f.endswith(".yaml"))


def load_chip_model(name_or_path: str) -> ChipModel:
    """A built-in chip model by name (``neurosim-sram22``, ``neurosim-rram22``) or a YAML file."""
    path = name_or_path if os.path.isfile(name_or_path) else os.path.join(chip_model_dir(),
                                                                           f"{name_or_path}.yaml")
    if not os.path.isfile(path):
        raise UnknownNameError(f"unknown chip model {name_or_path!r}; known: {', '.join(chip_model_names())}")
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    where = f"chip model {os.path.basename(path)}"
    if not isinstance(data, Mapping) or not isinstance(data.get("constants"), Mapping):
        raise FormatError(f"{where}: needs a 'constants' mapping of key: {{value, source}}")
    body = dict(data["constants"])
    base = data.get("base")
    if base is not None:
        # A model may start from another one and change some constants (e.g. the RRAM variant of the
        # same 22 nm chip); the base's constants keep their sources.
        if base == data.get("name") or os.path.basename(path) == f"{base}.yaml":
            raise ConfigError(f"{where}: base {base!r} is the model itself")
        parent = load_chip_model(str(base))
        body = {**{k: {"value": v, "source": f"{parent.name}: {parent.sources[k]}"}
                   for k, v in parent.values.items()}, **body}
    unknown = sorted(set(body) - set(CONSTANTS))
    missing = sorted(set(CONSTANTS) - set(body))
    if unknown or missing:
        raise ConfigError(f"{where}: unknown keys {unknown or 'none'}, missing keys {missing or 'none'}")
    values, sources = {}, {}
    for key in CONSTANTS:
        leaf = body[key]
        if (not isinstance(leaf, Mapping) or set(leaf) != {"value", "source"}
                or not str(leaf["source"]).strip()):
            raise FormatError(f"{where}: {key} must be {{value: ..., source: '...'}} with a source")
        v = leaf["value"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"{where}: {key} must be a finite number >= 0, got {v!r}")
        if key in _INT_KEYS and not float(v).is_integer():
            raise ConfigError(f"{where}: {key} must be an integer, got {v!r}")
        values[key] = int(v) if key in _INT_KEYS else float(v)
        sources[key] = str(leaf["source"]).strip()
    return ChipModel(str(data.get("name", name_or_path)), str(data.get("description", "")),
                     str(data.get("source", "")), values, sources)


@dataclass(frozen=True)
class ChipLayerCost:
    """One layer on the chip: latency and energy by part, the events they come from."""

    index: int
    row: tuple[int, ...]
    placement: LayerPlacement
    windows: int
    conversions: int
    latency_breakdown_s: dict[str, float] = field(hash=False)
    energy_breakdown_j: dict[str, float] = field(hash=False)
    leakage_energy_j: float = 0.0
    neurosim_ops: int = 0

    @property
    def latency_s(self) -> float:
        return float(sum(self.latency_breakdown_s.values()))

    @property
    def energy_j(self) -> float:
        """Dynamic energy (leakage separate, as NeuroSim reports it)."""
        return float(sum(self.energy_breakdown_j.values()))

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.index + 1, "row": list(self.row), "tiles": self.placement.tiles,
                "speed_up": self.placement.speed_up, "windows": self.windows,
                "conversions": self.conversions, "latency_s": self.latency_s, "energy_j": self.energy_j,
                "leakage_energy_j": self.leakage_energy_j, "neurosim_ops": self.neurosim_ops,
                **{f"latency_{k}_s": v for k, v in self.latency_breakdown_s.items()},
                **{f"energy_{k}_j": v for k, v in self.energy_breakdown_j.items()}}


@dataclass(frozen=True)
class ChipCost:
    """A network on a NeuroSim-style chip: every layer, the totals and the area."""

    model: str
    pipelined: bool
    floorplan: Floorplan
    layers: tuple[ChipLayerCost, ...]
    area_breakdown_mm2: dict[str, float] = field(hash=False)
    real_ops: int | None = None

    @property
    def latency_s(self) -> float:
        """Per image: pipelined, the pipeline cycle (slowest layer); layer by layer, the sum."""
        lat = [l.latency_s for l in self.layers]
        return max(lat) if self.pipelined else sum(lat)

    @property
    def energy_j(self) -> float:
        return sum(l.energy_j for l in self.layers)

    @property
    def leakage_energy_j(self) -> float:
        return sum(l.leakage_energy_j for l in self.layers)

    @property
    def area_mm2(self) -> float:
        return float(sum(self.area_breakdown_mm2.values()))

    @property
    def neurosim_ops(self) -> int:
        return sum(l.neurosim_ops for l in self.layers)

    post_layout_energy_factor: float = 1.0

    def tops_per_w(self, convention: str = "neurosim") -> float:
        """NeuroSim's figure: its operation count over dynamic + leakage energy times its post-layout
        factor; ``real``: the same with the real 2 x MACs."""
        ops = self.neurosim_ops if convention == "neurosim" else self.real_ops
        if ops is None:
            raise ConfigError("real operation count unknown: pass real_ops to estimate_chip")
        energy = (self.energy_j + self.leakage_energy_j) * self.post_layout_energy_factor
        return ops / energy / 1e12

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "pipelined": self.pipelined, "latency_s": self.latency_s,
                "energy_j": self.energy_j, "leakage_energy_j": self.leakage_energy_j,
                "area_mm2": self.area_mm2, "area_breakdown_mm2": dict(self.area_breakdown_mm2),
                "neurosim_ops": self.neurosim_ops, "real_ops": self.real_ops,
                "tops_per_w_neurosim": self.tops_per_w(),
                "tops_per_w_real": None if self.real_ops is None else self.tops_per_w("real"),
                "floorplan": self.floorplan.to_dict(), "layers": [l.to_dict() for l in self.layers]}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([l.to_dict() for l in self.layers])


def global_bus_bits(fp: Floorplan, col_mux: int, maximum: float) -> float:
    """NeuroSim's global bus: each tile's interface (a CM tile's rows plus its muxed outputs; an NM
    tile's ``sqrt(k)`` PEs' rows and outputs), summed over layers (pipelined: over every tile), halved
    until at most ``maximum``."""
    k_side = math.ceil(math.sqrt(fp.pe_kernel_area)) if fp.pe_kernel_area else 1
    width = 0.0
    for p in fp.layers:
        rows_in = float(fp.nm_pe_size * k_side if p.novel else fp.cm_tile_size)
        per = rows_in + rows_in / col_mux
        width += per * (p.tiles if fp.settings.pipeline else 1)
    while width > maximum:
        width /= 2
    return width


def _psum_bits(m: ChipModel, input_bits: int, slices: int, pe_subarrays: int, pes: int) -> int:
    # NeuroSim's partial-sum word: ADC bits + input bits + weight-slice shifts + sign, grown by the
    # adder trees of a PE (ceil(sqrt(subarrays))) and of a tile (ceil(log2(PEs))).
    return (m.integer("adc_bits") + input_bits + (slices - 1) * m.integer("cell_bits") + 1
            + math.ceil(math.sqrt(pe_subarrays)) + math.ceil(math.log2(max(pes, 1))))


@dataclass(frozen=True)
class ChipLayerEvents:
    """Model-independent event counts of one layer on the chip (what each constant multiplies)."""

    windows: int
    conversions: int
    cell_reads: float       # cells read with an input 1 bit (used rows x density per conversion)
    current: float          # fraction of rows used x input bit density (bit-line current share)
    core_cycles: float      # N x B x col_mux / speed_up
    adder_stages: float     # N x max(1, ceil(log2(row subarrays)))
    novel: bool
    tile_input_bits: float  # per window, into one tile
    tile_output_bits: float  # per window, out of one tile (partial sums)
    global_bits: float      # through the global buffer
    bus_input_transfers: int
    bus_output_transfers: int
    toggled_input_bits: float
    toggled_output_bits: float
    fanout_input_bits: float   # toggled input bits x column tiles reached
    fanout_output_bits: float  # toggled output bits x row tiles left


def chip_events(rows: Sequence[Sequence[int]], model: ChipModel, fp: Floorplan, input_bits: int,
                weight_bits: int, densities: Sequence[float]) -> list[ChipLayerEvents]:
    """The events of every layer of ``rows`` on floor plan ``fp`` (see the module docstring)."""
    m = model
    a, mux = m.integer("sub_array"), m.integer("col_mux")
    slices = math.ceil(weight_bits / m.integer("cell_bits"))
    bus = global_bus_bits(fp, mux, m["max_global_bus_bits"])
    grid_rows, grid_cols = fp.tile_grid
    k_side = math.ceil(math.sqrt(fp.pe_kernel_area)) if fp.pe_kernel_area else 1
    events = []
    for r, p, dens in zip(rows, fp.layers, densities, strict=False):
        h, w, ic, kh, kw, oc, pool, stride = (list(r) + [1])[:8]
        n = int((h - kh + 1) / stride * (w - kw + 1) / stride)
        big = ic * kh * kw
        rows_per_block = ic if p.novel else big
        row_sub = math.ceil(rows_per_block / a) * (kh * kw if p.novel else 1)
        col_sub = math.ceil(oc * slices / a)
        used = min(rows_per_block, a) / a
        if p.novel:
            block, pe_sub, pes = fp.nm_pe_size, (fp.nm_pe_size // a) ** 2, fp.pe_kernel_area
            tile_in = min(ic, block) * k_side * input_bits
        else:
            block, pe_sub = fp.cm_tile_size, (fp.cm_pe_size // a) ** 2
            pes = math.ceil(fp.cm_tile_size / fp.cm_pe_size)
            tile_in = min(big, block) * input_bits
        tile_out = min(oc * slices, block) / slices * _psum_bits(m, input_bits, slices, pe_sub, pes)
        in_bits = n * big * input_bits
        out_bits = n * oc * input_bits / (4 if pool else 1)
        t_in, t_out = in_bits * m["input_toggle"], out_bits * m["output_toggle"]
        events.append(ChipLayerEvents(
            windows=n, conversions=n * input_bits * row_sub * col_sub * a,
            cell_reads=n * input_bits * row_sub * col_sub * a * min(rows_per_block, a) * dens,
            current=used * dens,
            core_cycles=n * input_bits * mux / p.speed_up,
            adder_stages=n * max(1, math.ceil(math.log2(row_sub))),
            novel=p.novel, tile_input_bits=tile_in, tile_output_bits=tile_out,
            global_bits=in_bits + out_bits,
            bus_input_transfers=math.ceil(in_bits / bus * grid_rows / p.tile_rows),
            bus_output_transfers=math.ceil(out_bits / bus * grid_cols / p.tile_cols),
            toggled_input_bits=t_in, toggled_output_bits=t_out,
            fanout_input_bits=t_in * math.ceil(oc * slices / block),
            fanout_output_bits=t_out * math.ceil(rows_per_block / block)))
    return events


def estimate_chip(rows: Sequence[Sequence[int]], model: ChipModel | str = "neurosim-sram22",
                  pipelined: bool = True, input_bits: int = 8, weight_bits: int = 8,
                  speed_up_degree: int = 8, input_density: float | Sequence[float] | None = None,
                  real_ops: int | None = None) -> ChipCost:
    """Cost NetWork.csv ``rows`` on the chip ``model`` (see the module docstring).

    ``input_density``: fraction of 1 bits in each layer's input (one value or one per layer); default
    the model's ``reference_input_density``. ``real_ops`` (2 x MACs) is only reported.
    """
    m = load_chip_model(model) if isinstance(model, str) else model
    a, mux = m.integer("sub_array"), m.integer("col_mux")
    fp = plan_floor(rows, FloorplanSettings(a, weight_bits, m.integer("cell_bits"), True, pipelined,
                                            speed_up_degree))
    n_layers = len(rows)
    if input_density is None:
        dens = [m["reference_input_density"]] * n_layers
    elif isinstance(input_density, (int, float)):
        dens = [float(input_density)] * n_layers
    else:
        dens = [float(d) for d in input_density]
    if len(dens) != n_layers or any(not 0 <= d <= 1 for d in dens):
        raise ConfigError(f"input_density must be one value or {n_layers} values in [0, 1], got "
                          f"{input_density!r}")
    clk = m["clock_period_s"]
    out: list[ChipLayerCost] = []
    for i, (r, p, e) in enumerate(zip(rows, fp.layers,
                                      chip_events(rows, m, fp, input_bits, weight_bits, dens), strict=False)):
        w_in = m["tile_input_width_nm_bits"] if e.novel else m["tile_input_width_cm_bits"]
        w_out = m["tile_output_width_nm_bits"] if e.novel else m["tile_output_width_cm_bits"]
        buffer = (e.windows * (e.tile_input_bits / w_in + e.tile_output_bits / w_out)
                  + e.global_bits / m["global_buffer_width_bits"])
        bus = (m["bus_input_cycles"] * e.bus_input_transfers + m["bus_output_cycles"] * e.bus_output_transfers
               + m["bus_layer_cycles"])
        latency = {"core": e.core_cycles * clk,
                   "accumulation": e.adder_stages * m["adder_stage_cycles"] * clk,
                   "buffer": buffer * clk, "interconnect": bus * clk}
        energy = {
            "cells": e.cell_reads * m["cell_read_energy_j"],
            "adc": e.conversions * (m["adc_energy_fixed_j"] + m["adc_energy_current_j"] * e.current),
            "accumulation": e.conversions * m["shift_add_energy_j"],
            "periphery": e.conversions * (m["periphery_energy_fixed_j"]
                                          + m["periphery_energy_current_j"] * e.current),
            "interconnect": (e.toggled_input_bits * m["bus_energy_input_j"]
                             + e.toggled_output_bits * m["bus_energy_output_j"]
                             + e.fanout_input_bits * m["bus_fanout_energy_input_j"]
                             + e.fanout_output_bits * m["bus_fanout_energy_output_j"]),
            "buffer": e.global_bits * m["buffer_energy_per_bit_j"],
        }
        h, w, ic, kh, kw, oc = list(r)[:6]
        out.append(ChipLayerCost(i, tuple(r), p, e.windows, e.conversions, latency, energy,
                                 neurosim_ops=2 * h * w * ic * kh * kw * oc))
    # leakage: every tile leaks for the whole image time
    total_tiles = fp.total_tiles
    lat = [l.latency_s for l in out]
    period = max(lat) if pipelined else sum(lat)
    leak_w = m["leakage_per_tile_w"] * total_tiles
    out = [ChipLayerCost(l.index, l.row, l.placement, l.windows, l.conversions, l.latency_breakdown_s,
                         l.energy_breakdown_j,
                         leak_w * period * l.placement.tiles / total_tiles if pipelined
                         else leak_w * l.latency_s, l.neurosim_ops) for l in out]
    # area
    subarrays = 0
    for p in fp.layers:
        per_tile = (fp.pe_kernel_area * (fp.nm_pe_size // a) ** 2 if p.novel
                    else (fp.cm_tile_size // a) ** 2)
        subarrays += p.tiles * per_tile
    area = {"arrays": subarrays * a * a * m["cell_area_mm2"],
            "adcs": subarrays * (a / mux) * m["adc_area_mm2"],
            "accumulation": subarrays * m["accumulation_area_per_subarray_mm2"],
            "periphery": subarrays * m["periphery_area_per_subarray_mm2"],
            "interconnect": total_tiles * m["interconnect_area_per_tile_mm2"]}
    return ChipCost(m.name, pipelined, fp, tuple(out), area, real_ops, m["post_layout_energy_factor"])
