"""The crossbar array specification: rows, columns and how weights are bit-sliced over cells."""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, Literal

from imcflow.errors import ConfigError
from imcflow.validate import check_bits, check_int

ColumnPacking = Literal["whole-slices", "fractional"]


@dataclass(frozen=True)
class ArraySpec:
    """One R x C crossbar.

    ``rows`` are word lines (inputs), ``cols`` bit lines (outputs). A weight of ``weight_bits`` is
    bit-sliced over ``slices = ceil(weight_bits / cell_bits)`` adjacent columns.

    ``column_packing`` decides the usable column count C' (mapping.md section 1):

    * ``"whole-slices"`` (default): C' = floor(C / slices); a weight never shares a cell with another.
    * ``"fractional"``: C' = floor(C * cell_bits / weight_bits), the spec's formula verbatim. The two
      agree whenever cell_bits divides weight_bits (every published configuration); they differ for
      e.g. 8-bit weights in 3-bit cells, where the spec's formula counts 2.67 cells per weight.

    >>> ArraySpec(512, 512, cell_bits=2, weight_bits=8).usable_cols
    128
    """

    rows: int
    cols: int
    cell_bits: int = 1
    weight_bits: int = 1
    column_packing: ColumnPacking = "whole-slices"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "rows", check_int("array rows", self.rows, 1, 1 << 20))
        set_(self, "cols", check_int("array cols", self.cols, 1, 1 << 20))
        set_(self, "cell_bits", check_bits("cell_bits", self.cell_bits))
        set_(self, "weight_bits", check_bits("weight_bits", self.weight_bits))
        if self.column_packing not in ("whole-slices", "fractional"):
            raise ConfigError(
                f"column_packing must be 'whole-slices' or 'fractional', got {self.column_packing!r}")
        if self.usable_cols == 0:
            raise ConfigError(
                f"array cols={self.cols} cannot hold one {self.weight_bits}-bit weight in "
                f"{self.cell_bits}-bit cells ({self.slices} columns needed): usable columns C' = 0")

    @cached_property
    def slices(self) -> int:
        """Columns (cells) one weight occupies."""
        return math.ceil(self.weight_bits / self.cell_bits)

    @cached_property
    def usable_cols(self) -> int:
        """C': weights one row can hold (mapping.md section 1)."""
        if self.column_packing == "fractional":
            return self.cols * self.cell_bits // self.weight_bits
        return self.cols // self.slices

    @property
    def cells(self) -> int:
        return self.rows * self.cols

    @property
    def label(self) -> str:
        return f"{self.rows}x{self.cols}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["usable_cols"] = self.usable_cols
        return d


_ARRAY_RE = re.compile(r"^\s*(\d+)\s*[xX*]\s*(\d+)\s*$")


def parse_array(text: str, cell_bits: int = 1, weight_bits: int = 1,
                column_packing: ColumnPacking = "whole-slices") -> ArraySpec:
    """Parse ``"RxC"`` (e.g. ``"512x256"``) into an :class:`ArraySpec`.

    >>> parse_array("256x512").cols
    512
    """
    if not isinstance(text, str):
        raise ConfigError(f"array must be a string ROWSxCOLS, e.g. '512x512'; got {text!r}")
    m = _ARRAY_RE.match(text)
    if not m:
        raise ConfigError(f"array must be written ROWSxCOLS, e.g. 512x512; got {text!r}")
    return ArraySpec(int(m.group(1)), int(m.group(2)), cell_bits=cell_bits, weight_bits=weight_bits,
                     column_packing=column_packing)
