"""Physical sanity limits of preset constants (torch-free).

A crossbar cell sits where a word line crosses a bit line; with lines and spaces of the feature size F,
the densest planar cell is 2F x 2F = 4F^2. A preset whose cell area is below 4F^2 at its technology
node describes no buildable planar array; :func:`cell_area_problem` says so.
"""
from __future__ import annotations

import re

from imcflow.hardware.preset import HardwarePreset

_NODE = re.compile(r"(\d+(?:\.\d+)?)\s*nm")


def feature_size_nm(technology: str) -> float | None:
    """The node in nm of a technology string (``"32 nm"`` -> 32.0), None when it names none.

    >>> feature_size_nm("32 nm"), feature_size_nm("7 nm FinFET"), feature_size_nm("")
    (32.0, 7.0, None)
    """
    m = _NODE.search(technology)
    return float(m.group(1)) if m else None


def min_cell_area_mm2(technology: str) -> float | None:
    """4F^2 in mm2 at the node of ``technology`` (None when unknown).

    >>> min_cell_area_mm2("32 nm")   # 4 x (32e-6 mm)^2
    4.096e-09
    """
    f = feature_size_nm(technology)
    return None if f is None else 4 * (f * 1e-6) ** 2


def cell_area_problem(preset: HardwarePreset) -> str | None:
    """Why the preset's cell area is physically impossible (below 4F^2), or None."""
    area = preset["array.area_per_cell_mm2"]
    f = feature_size_nm(preset.technology)
    if area is None or f is None:
        return None
    floor = 4 * (f * 1e-6) ** 2
    if area >= floor * (1 - 1e-9):
        return None
    return (f"preset {preset.name!r}: array.area_per_cell_mm2 = {area:.4g} mm2 is "
            f"{area / (f * 1e-6) ** 2:.3g} F^2 at F = {f:g} nm, below the 4F^2 = {floor:.4g} mm2 of the "
            f"densest planar crossbar cell")
