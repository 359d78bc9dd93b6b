"""A plain-text table renderer shared by every command."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def fmt(value: Any) -> str:
    """Format a cell: thousands separators for ints, 3 significant decimals for floats."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


_PREFIXES = {-18: "a", -15: "f", -12: "p", -9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T"}
#: Unit of a value from its name's suffix (the house style puts the unit in the name).
UNIT_SUFFIXES = {"_js": "J*s", "_j": "J", "_s": "s", "_mm2": "mm2", "_w": "W", "_hz": "Hz"}


def unit_of(name: str) -> str:
    """``"adc.energy_per_conversion_j"`` -> ``"J"``; ``""`` when the name carries no unit."""
    return next((u for suffix, u in UNIT_SUFFIXES.items() if name.endswith(suffix)), "")


def engineering(value: float, unit: str = "", digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits and an exponent that is a multiple of 3: an SI
    prefix for J, s, W, Hz; ``e-N`` for areas in mm2 (a prefix on a squared unit would mislead) and
    for unitless numbers outside [0.001, 1000).

    >>> engineering(1.5625e-12, "J"), engineering(1 / 1.28e9, "s"), engineering(1.2e-9, "mm2")
    ('1.562 pJ', '781.2 ps', '1.2e-9 mm2')
    >>> engineering(0.0104, ""), engineering(0.0, "J")
    ('0.0104', '0 J')
    """
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}".rstrip()
    exp3 = 3 * math.floor(math.log10(abs(value)) / 3)
    mantissa = f"{value / 10 ** exp3:.{digits}g}"
    if float(mantissa) >= 1000:  # rounding carried into the next power of 1000
        exp3 += 3
        mantissa = f"{value / 10 ** exp3:.{digits}g}"
    if unit and unit != "mm2" and exp3 in _PREFIXES:
        return f"{mantissa} {_PREFIXES[exp3]}{unit}"
    if not unit and 1e-3 <= abs(value) < 1e3:
        return f"{value:.{digits - 1}g}" if abs(value) < 1 else f"{value:.{digits}g}"
    text = mantissa if exp3 == 0 else f"{mantissa}e{exp3}"
    return f"{text} {unit}".rstrip()


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    """Render rows as an aligned text table; numbers right-aligned, text left-aligned.

    >>> print(render_table(["a", "b"], [["x", 1234]]))
    a      b
    -  -----
    x  1,234
    """
    cells = [[fmt(v) for v in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) or r[i] is None
                   for r in rows) if rows else False for i in range(len(headers))]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(vals, widths, numeric, strict=True)).rstrip()

    out = [title] if title else []
    out += [line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells]
    return "\n".join(out)
