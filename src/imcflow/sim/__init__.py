"""Crossbar simulator: explicit tiles from a mapping plan, a vectorised executor, hardware effects,
a model wrapper and a library-level verifier (torch required)."""
from imcflow.sim.effects import AdcSpec, NoiseSpec, SimConfig
from imcflow.sim.executor import CrossbarLayer, SimCounters, SimResult, reference_conv
from imcflow.sim.tiles import LayerTiles, Tile, build_tiles

__all__ = ["AdcSpec", "NoiseSpec", "SimConfig", "CrossbarLayer", "SimCounters", "SimResult",
           "reference_conv", "LayerTiles", "Tile", "build_tiles"]
