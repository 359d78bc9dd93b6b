"""``--objective``: add the plan that minimises cycles, energy, EDP or arrays (through the cost model)
to the mapped methods of ``map``, ``cost`` and ``sweep``."""
from __future__ import annotations

import argparse

from imcflow.mapping.base import MappingStrategy
from imcflow.mapping.objective import OBJECTIVES, objective_strategy


def add_objective_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--objective", choices=OBJECTIVES, default=None,
                        help="also map every layer with the window and tiling that minimise this "
                             "objective under the cost model (method opt-<objective>)")


def with_objective(methods: tuple[str | MappingStrategy, ...], objective: str | None,
                   settings) -> tuple[str | MappingStrategy, ...]:
    """``methods`` plus the objective search (a strategy object carrying the cost settings)."""
    if objective is None:
        return methods
    return (*methods, objective_strategy(objective, settings))
