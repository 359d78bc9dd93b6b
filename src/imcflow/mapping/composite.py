"""Composite layers in the mapping engine: how each composite layer type is mapped, by type.

A composite layer (:data:`imcflow.layers.COMPOSITE_LAYERS`: a low-rank conv, later epitome or row-skipped
layers) is a record of several crossbar-mapped factors. Its record is data in :mod:`imcflow.layers`;
how it is mapped is a function registered here for its type, so ``map_network``, reports and the cost
model treat it like any layer: ``map(layer, strategy, array, options)`` returns one combined
:class:`~imcflow.mapping.base.LayerMapping` (carrying one plan per factor) and ``useful_macs(layer,
geometry)`` the multiply-accumulates of all factors. :mod:`imcflow.mapping.lowrank` registers low rank.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.mapping.base import LayerMapping, MappingOptions, MappingStrategy


@dataclass(frozen=True)
class CompositeMapper:
    """How one composite layer type is mapped (see the module docstring)."""

    map: Callable[[Any, MappingStrategy, ArraySpec, MappingOptions], LayerMapping]
    useful_macs: Callable[[Any, str], int]


_MAPPERS: dict[type, CompositeMapper] = {}


def register_composite(layer_type: type, map_fn: Callable[..., LayerMapping],
                       useful_macs: Callable[[Any, str], int]) -> None:
    """Map records of ``layer_type`` with ``map_fn`` (a second registration of a type is refused)."""
    if layer_type in _MAPPERS:
        raise ConfigError(f"composite layer type {layer_type.__name__} already has a mapper")
    _MAPPERS[layer_type] = CompositeMapper(map_fn, useful_macs)


def composite_mapper(layer: object) -> CompositeMapper | None:
    """The mapper of ``layer``'s type, or None when it is not a registered composite layer."""
    return _MAPPERS.get(type(layer))


def composite_types() -> tuple[type, ...]:
    return tuple(_MAPPERS)
