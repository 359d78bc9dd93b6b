"""Per-event energy, per-instance area and per-activation latency of crossbar components.

Each :class:`Component` turns preset-independent counts (:mod:`imcflow.cost.counts`) into joules with
one preset constant, and says how much area one array's share of it occupies. The model sums the
registered components; adding one is :func:`register_component`.

ADC cost depends on resolution through a scaling law relative to the resolution the preset's numbers
were reported at (``adc.reference_bits``): ``walden`` (energy or area x 2^(bits - reference_bits),
the Walden figure of merit E = FOM * 2^ENOB) or ``linear`` (x bits / reference_bits).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from imcflow.cost.counts import LayerCounts, TileShape
from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.hardware.preset import ADC_SCALING_LAWS, HardwarePreset
from imcflow.registry import Registry

AREA_GROUPS = ("arrays", "adcs", "peripherals", "buffers")

def adc_scale(preset: HardwarePreset, what: str) -> float:
    """Factor applied to the reference ADC energy (``what="energy"``) or area at ``adc.bits``.

    >>> from imcflow.hardware.preset import load_preset
    >>> adc_scale(load_preset("isaac", ["adc.bits=6"]), "energy")
    0.25
    """
    law = ADC_SCALING_LAWS.get(preset[f"adc.{what}_scaling"])
    return law(preset["adc.bits"], preset["adc.reference_bits"])


def adcs_per_array(preset: HardwarePreset, array: ArraySpec) -> int:
    """ADCs of one array: its physical columns shared ``adc.columns_per_adc`` to one ADC."""
    return math.ceil(array.cols / preset["adc.columns_per_adc"])


def conversions_per_step(preset: HardwarePreset, tile: TileShape, slices: int) -> int:
    return tile.cols * (1 if preset["adc.slices_merged"] else slices)


def activation_time_s(preset: HardwarePreset, array: ArraySpec, tile: TileShape, steps: int) -> float:
    """Time of one activation of ``tile``: ``steps`` x step time, where a step is one read and the
    conversions of its columns, ``ceil(conversions / ADCs)`` in sequence on each ADC (columns are
    assigned to ADCs interleaved, so the occupied columns spread evenly). Pipelined hardware overlaps
    the read with the previous conversions (step = max), otherwise step = read + conversions.

    >>> from imcflow.hardware.preset import load_preset
    >>> activation_time_s(load_preset("isaac"), ArraySpec(128, 128, 2, 16), TileShape(128, 16, 1), 16)
    1.6e-06
    """
    convert = preset["adc.conversion_time_s"] * math.ceil(
        conversions_per_step(preset, tile, array.slices) / adcs_per_array(preset, array))
    read = preset["array.read_time_s"]
    step = max(read, convert) if preset["timing.pipelined"] else read + convert
    return steps * step


# --- components ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """One kind of circuit: its energy for a layer's counts and its area per array (None = unknown)."""

    name: str
    area_group: str
    energy_j: Callable[[LayerCounts, HardwarePreset], float]
    area_per_array_mm2: Callable[[HardwarePreset, ArraySpec, int, int], float | None]


def _times(value: float | None, n: float) -> float | None:
    return None if value is None else value * n


def _adc_area(p: HardwarePreset, a: ArraySpec, in_bits: int, out_bits: int) -> float | None:
    return _times(p["adc.area_mm2"], adcs_per_array(p, a) * adc_scale(p, "area"))


COMPONENTS: Registry[Component] = Registry("cost component")


def register_component(component: Component, *, replace: bool = False) -> Component:
    if component.area_group not in AREA_GROUPS:
        raise ConfigError(f"component {component.name!r}: area_group must be one of "
                          f"{', '.join(AREA_GROUPS)}, got {component.area_group!r}")
    return COMPONENTS.register(component.name, component, replace=replace)


for _component in (
    Component("cells", "arrays",
              lambda c, p: c.cell_reads * p["array.energy_per_cell_read_j"],
              lambda p, a, i, o: _times(p["array.area_per_cell_mm2"], a.cells)),
    Component("dac", "peripherals",
              lambda c, p: c.dac_drives * p["dac.energy_per_drive_j"],
              lambda p, a, i, o: _times(p["dac.area_mm2"], a.rows)),
    Component("sample_hold", "peripherals",
              lambda c, p: c.column_samples * p["sample_hold.energy_per_sample_j"],
              lambda p, a, i, o: _times(p["sample_hold.area_mm2"], a.cols)),
    Component("adc", "adcs",
              lambda c, p: (c.conversions(p["adc.slices_merged"]) * p["adc.energy_per_conversion_j"]
                            * adc_scale(p, "energy")),
              _adc_area),
    Component("shift_add", "peripherals",
              lambda c, p: c.conversions(p["adc.slices_merged"]) * p["shift_add.energy_per_op_j"],
              lambda p, a, i, o: _times(p["shift_add.area_mm2"], p["shift_add.units_per_array"])),
    Component("accumulator", "peripherals",
              lambda c, p: c.accumulations * p["accumulator.energy_per_op_j"],
              lambda p, a, i, o: _times(p["accumulator.area_mm2"], p["accumulator.units_per_array"])),
    Component("input_buffer", "buffers",
              lambda c, p: c.input_read_bits * p["input_buffer.energy_per_bit_j"],
              lambda p, a, i, o: _times(p["input_buffer.area_per_bit_mm2"], a.rows * i)),
    Component("output_buffer", "buffers",
              lambda c, p: c.output_write_bits * p["output_buffer.energy_per_bit_j"],
              lambda p, a, i, o: _times(p["output_buffer.area_per_bit_mm2"], a.usable_cols * o)),
):
    register_component(_component)


def array_area_mm2(preset: HardwarePreset, array: ArraySpec, input_bits: int,
                   output_bits: int) -> dict[str, float | None]:
    """Area of one array with its share of peripherals, by group (None where the preset has no area).

    >>> from imcflow.hardware.preset import load_preset
    >>> table1 = load_preset("isaac", ["array.area_per_cell_mm2=1.52587890625e-09"])
    >>> a = array_area_mm2(table1, ArraySpec(128, 128, 2, 16), 16, 16)
    >>> round(sum(a.values()) * 8, 5)     # one ISAAC IMA = 8 crossbars: Table 1 says 0.0131 mm2
    0.01312
    """
    groups: dict[str, float | None] = {g: 0.0 for g in AREA_GROUPS}
    for comp in COMPONENTS.values():
        area = comp.area_per_array_mm2(preset, array, input_bits, output_bits)
        cur = groups[comp.area_group]
        groups[comp.area_group] = None if area is None or cur is None else cur + area
    return groups
