"""Array, cell and ADC specifications (torch-free)."""
from imcflow.hardware.array import ArraySpec, parse_array

__all__ = ["ArraySpec", "parse_array"]
