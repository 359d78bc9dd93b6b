"""Weight mapping onto crossbars (torch-free): strategies, their registry, and network-level results.

Importing this package registers the four built-in strategies: im2col, sdk, vwsdk, flex. A fifth is one
module that defines a class with ``name``, ``description`` and ``map`` and calls ``register_strategy``.
"""
from imcflow.mapping import flex, im2col, lowrank, sdk, vwsdk  # noqa: F401  (registration)
from imcflow.mapping.base import (
                                  LayerMapping,
                                  MappingOptions,
                                  MappingStrategy,
                                  Window,
                                  get_strategy,
                                  lower_bounds,
                                  register_strategy,
                                  strategy_names,
)
from imcflow.mapping.geometry import LayerProblem
from imcflow.mapping.network import (
                                  DEFAULT_METHODS,
                                  LayerReport,
                                  MethodTotals,
                                  NetworkMapping,
                                  map_layer,
                                  map_network,
                                  map_sweep,
)

__all__ = [
    "LayerMapping", "MappingOptions", "MappingStrategy", "Window", "get_strategy", "lower_bounds",
    "register_strategy", "strategy_names", "LayerProblem", "DEFAULT_METHODS", "LayerReport",
    "MethodTotals", "NetworkMapping", "map_layer", "map_network", "map_sweep",
]
