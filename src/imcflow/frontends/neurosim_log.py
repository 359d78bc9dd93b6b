"""Read the console output of DNN+NeuroSim (V1.3/V1.4 ``main``): per-layer and chip figures.

NeuroSim prints, per layer, ``layerN's readLatency is: 132974ns`` and the like, then a breakdown
(ADC / accumulation / other peripheries, latency and dynamic energy) and chip totals. This parser
turns one log into a :class:`NeuroSimLog` in SI units (seconds, joules, watts, mm2), so imcflow's
cost model can be compared with it (:mod:`imcflow.cost.periphery`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from imcflow.errors import FormatError

_UNITS = {"ns": 1e-9, "pJ": 1e-12, "uW": 1e-6, "um^2": 1e-6}  # um^2 -> mm2
_NUM = r"([-+0-9.eE]+)"

# per-layer line -> field name
_LAYER_FIELDS = {
    "readLatency": "latency_s", "readDynamicEnergy": "energy_j", "leakagePower": "leakage_power_w",
    "leakageEnergy": "leakage_energy_j", "buffer latency": "buffer_latency_s",
    "buffer readDynamicEnergy": "buffer_energy_j", "ic latency": "ic_latency_s",
    "ic readDynamicEnergy": "ic_energy_j",
}
_BREAKDOWN = {"ADC": "adc", "Accumulation": "accum", "Other": "other"}
_AREA = {"ChipArea": "area_mm2", "Chip total CIM array": "area_array_mm2",
         "Total IC Area": "area_ic_mm2", "Total ADC": "area_adc_mm2",
         "Total Accumulation": "area_accum_mm2", "Other Peripheries": "area_other_mm2"}


@dataclass(frozen=True)
class NeuroSimLog:
    """Figures of one NeuroSim run: ``layers[i]`` maps field -> value (SI units)."""

    pipelined: bool
    clock_period_s: float
    tiles: tuple[int, ...]
    speed_up: tuple[int, ...]
    layers: tuple[dict[str, float], ...] = field(hash=False)
    chip: dict[str, float] = field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"pipelined": self.pipelined, "clock_period_s": self.clock_period_s,
                "tiles": list(self.tiles), "speed_up": list(self.speed_up),
                "layers": [dict(l) for l in self.layers], "chip": dict(self.chip)}


def _value(text: str, unit: str) -> float:
    return float(text) * _UNITS.get(unit, 1.0)


def parse_neurosim_log(text: str, source: str = "<NeuroSim log>") -> NeuroSimLog:
    """Parse a NeuroSim console log (see the module docstring)."""
    layers: dict[int, dict[str, float]] = {}
    chip: dict[str, float] = {}
    tiles: dict[int, int] = {}
    speed: dict[int, int] = {}
    section, current = "", 0
    clock = 0.0
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("----------------- # of tile"):
            section = "tiles"
        elif s.startswith("----------------- Speed-up"):
            section = "speed"
        elif s.startswith("----------------- Utilization"):
            section = ""
        m = re.match(r"layer(\d+): (\d+)$", s)
        if m and section in ("tiles", "speed"):
            (tiles if section == "tiles" else speed)[int(m.group(1))] = int(m.group(2))
            continue
        m = re.match(r"-+ Estimation of Layer (\d+) -+", s)
        if m:
            current = int(m.group(1))
            layers[current] = {}
            continue
        if s.startswith("------------------------------ Summary"):
            current = 0
        m = re.match(r"layer(\d+)'s (.+?) is: " + _NUM + r"(ns|pJ|uW)$", s)
        if m and m.group(2) in _LAYER_FIELDS:
            layers[int(m.group(1))][_LAYER_FIELDS[m.group(2)]] = _value(m.group(3), m.group(4))
            continue
        m = re.match(r"-+ (ADC|Accumulation|Other) .* read(Latency|DynamicEnergy) is : " + _NUM
                     + r"(ns|pJ)$", s)
        if m:
            key = f"{_BREAKDOWN[m.group(1)]}_{'latency_s' if m.group(2) == 'Latency' else 'energy_j'}"
            (layers[current] if current else chip)[key] = _value(m.group(3), m.group(4))
            continue
        m = re.match(r"Chip clock period is: " + _NUM + "ns", s)
        if m:
            clock = float(m.group(1)) * 1e-9
            continue
        for prefix, key in _AREA.items():
            m = re.match(re.escape(prefix) + r".*: " + _NUM + r"um\^2$", s)
            if m:
                chip[key] = _value(m.group(1), "um^2")
                break
        m = re.match(r"Chip (?:pipeline-system-clock-cycle|layer-by-layer readLatency) \(per image\) is: "
                     + _NUM + "ns", s)
        if m:
            chip["latency_s"] = float(m.group(1)) * 1e-9
        m = re.match(r"Chip (?:pipeline-system readDynamicEnergy \(per image\)|total readDynamicEnergy) is: "
                     + _NUM + "pJ", s)
        if m:
            chip["energy_j"] = float(m.group(1)) * 1e-12
        m = re.match(r"Chip (?:pipeline-system leakage Energy \(per image\)|total leakage Energy) is: "
                     + _NUM + "pJ", s)
        if m:
            chip["leakage_energy_j"] = float(m.group(1)) * 1e-12
    if not layers or "latency_s" not in chip:
        raise FormatError(f"{source}: not a NeuroSim log (no 'Estimation of Layer' sections or no chip "
                          f"latency line)")
    n = max(layers)
    missing = [i for i in range(1, n + 1) if "latency_s" not in layers.get(i, {})]
    if missing:
        raise FormatError(f"{source}: layer(s) {missing} have no readLatency line (truncated log?)")
    pipelined = "pipeline-system" in text
    return NeuroSimLog(pipelined, clock, tuple(tiles.get(i, 0) for i in range(1, n + 1)),
                       tuple(speed.get(i, 0) for i in range(1, n + 1)),
                       tuple(layers[i] for i in range(1, n + 1)), chip)


def read_neurosim_log(path: str) -> NeuroSimLog:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse_neurosim_log(fh.read(), source=path)
