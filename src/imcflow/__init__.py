"""imcflow: map, verify, cost and compress CNNs on in-memory-computing crossbar arrays.

The mapping and cost code (:mod:`imcflow.mapping`, :mod:`imcflow.hardware`, :mod:`imcflow.layers`) needs
only numpy; torch is imported by the model, frontend, simulation and compression packages only.
"""
from imcflow.errors import ConfigError, ImcflowError
from imcflow.hardware.array import ArraySpec, parse_array
from imcflow.layers import ConvLayer, Network, linear_layer, parse_layer_spec
from imcflow.mapping import MappingOptions, map_layer, map_network
from imcflow.networks import load_network

__version__ = "0.1.0"
__all__ = ["ArraySpec", "ConfigError", "ConvLayer", "ImcflowError", "MappingOptions", "Network",
           "linear_layer", "load_network", "map_layer", "map_network", "parse_array",
           "parse_layer_spec"]
