"""How much memory simulating one layer needs, estimated from its plan before anything is allocated,
and the limit past which the simulator refuses with a clear error instead of dying in an allocation.

Torch-free on purpose: the estimate is arithmetic on the layer and its mapping plan.
"""
from __future__ import annotations

from imcflow.errors import ConfigError
from imcflow.layers import ConvLayer
from imcflow.mapping.base import LayerMapping
from imcflow.validate import check_float, check_int

DEFAULT_MAX_MEMORY_GIB = 4.0  # per layer; raise it with max_memory_gib= / --max-memory-gib
_BYTES = 8  # float64 / int64 elements


def sim_memory_bytes(layer: ConvLayer, plan: LayerMapping, batch: int) -> int:
    """An upper estimate of the bytes one simulated run of ``layer`` under ``plan`` holds at once.

    Counted (8 bytes each): the input and the output six times each, and the weight set matrices twice.
    The input is held as random integers, their float copy, the padded copy and the executor's
    bit planes; the output as the accumulator over whole windows, its reordered copy, the result and
    the conv2d reference with its temporaries. The factor six was measured: ``verify_layer`` on a
    512 x 512 x 32 -> 32 3x3 layer, batch 2, flex on 512 x 512 grew the peak resident memory by
    1.56 GiB against 1.51 GiB estimated (torch 2, CPU).

    >>> from imcflow.hardware import ArraySpec
    >>> from imcflow.mapping import map_layer
    >>> layer = ConvLayer("c", 1, 1, 1, input_size=2)
    >>> sim_memory_bytes(layer, map_layer(layer, ArraySpec(4, 4), "im2col"), batch=1)  # 8*(6*4 + 6*4 + 2)
    400
    """
    padded = [n + 2 * p for n, p in zip(layer.input_size, layer.padding, strict=True)]  # type: ignore[arg-type]  # pairs once built
    inputs = batch * layer.in_channels * padded[0] * padded[1]
    window = plan.window
    outputs = batch * plan.windows * window.a * window.b * layer.out_channels
    sets = -(-plan.groups // plan.groups_per_tile)
    gp = plan.groups_per_tile
    matrices = sets * (gp * layer.group_in_channels * window.pw_h * window.pw_w) \
        * (gp * window.a * window.b * layer.group_out_channels)
    return _BYTES * (6 * inputs + 6 * outputs + 2 * matrices)


def check_sim_memory(layer: ConvLayer, plan: LayerMapping, batch: int,
                     max_memory_gib: float = DEFAULT_MAX_MEMORY_GIB) -> int:
    """Refuse (before allocating) a simulation whose :func:`sim_memory_bytes` exceeds the limit; return
    the estimate otherwise."""
    check_int("batch", batch, 1)
    limit = check_float("max_memory_gib", max_memory_gib, 0, min_inclusive=False)
    need = sim_memory_bytes(layer, plan, batch)
    if need > limit * (1 << 30):
        raise ConfigError(
            f"layer {layer.name!r} ({plan.method}, batch {batch}): simulating it needs about "
            f"{need / (1 << 30):,.1f} GiB, more than the limit of {limit:g} GiB; use a smaller batch "
            f"or input, or raise the limit (max_memory_gib / --max-memory-gib)")
    return need
