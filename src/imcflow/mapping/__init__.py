"""Weight mapping onto crossbars (torch-free): strategies, their registry, and network-level results.

Importing this package registers the four built-in strategies in the order reports list them (and in
which ties for the per-layer best are broken): im2col, sdk, vwsdk, flex. A fifth is one module that
defines a class with ``name``, ``description`` and ``map`` (returning plans that carry their tile
layout) and either calls :func:`register_strategy` or is published under the ``imcflow.strategies``
entry point (see the README's *Development* section).
"""
from imcflow.mapping import lowrank  # noqa: F401  (registers how low-rank layers map)
from imcflow.mapping.base import (
    STRATEGIES,
    LayerMapping,
    MappingOptions,
    MappingStrategy,
    Window,
    get_strategy,
    lower_bounds,
    method_title,
    register_strategy,
    strategy_names,
)
from imcflow.mapping.flex import Flex
from imcflow.mapping.geometry import LayerProblem
from imcflow.mapping.im2col import Im2col
from imcflow.mapping.network import (
    LayerReport,
    MethodTotals,
    NetworkMapping,
    map_layer,
    map_network,
    map_sweep,
)
from imcflow.mapping.sdk import Sdk
from imcflow.mapping.vwsdk import VwSdk

__all__ = [
    "STRATEGIES", "LayerMapping", "MappingOptions", "MappingStrategy", "Window", "get_strategy",
    "lower_bounds", "method_title", "register_strategy", "strategy_names", "LayerProblem", "LayerReport",
    "MethodTotals", "NetworkMapping", "map_layer", "map_network", "map_sweep",
]

for _strategy in (Im2col(), Sdk(), VwSdk(), Flex()):
    register_strategy(_strategy)
