"""The per-group convolution problem a mapping strategy solves, and the input pixels a window touches.

A window that yields ``a`` outputs along an axis with kernel size k, stride s and dilation d reads the
input positions {w*s + i*d : w < a, i < k}. Rows are only programmed for positions in that set, so the
parallel window (PW) has ``len(set)`` pixels along the axis. With d = 1 and s <= k this is k + (a-1)s,
the spec's PW extent (mapping.md section 5, stride extension); with s > k or d > 1 the extent has holes
that no kernel copy reads, and those rows are left out rather than programmed as zeros.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from imcflow.layers import ConvLayer
from imcflow.layers.core import as_pair


@dataclass(frozen=True)
class LayerProblem:
    """One group of a layer in the chosen geometry; a grouped layer is ``groups`` copies of it."""

    out_h: int
    out_w: int
    kh: int
    kw: int
    ic: int  # input channels of one group
    oc: int  # output channels of one group
    groups: int = 1
    stride_h: int = 1
    stride_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1

    @classmethod
    def from_layer(cls, layer: ConvLayer, geometry: str = "real") -> LayerProblem:
        ho, wo = layer.output_size(geometry)
        if geometry == "paper":
            # The published tables: stride-1 valid convolution, no dilation.
            return cls(ho, wo, layer.Kh, layer.Kw, layer.group_in_channels, layer.group_out_channels,
                       layer.groups)
        return cls(ho, wo, layer.Kh, layer.Kw, layer.group_in_channels, layer.group_out_channels,
                   layer.groups, *as_pair(layer.stride), *as_pair(layer.dilation))

    @cached_property
    def taps(self) -> int:
        return self.kh * self.kw

    @cached_property
    def macs(self) -> int:
        """Useful multiply-accumulates of the whole layer (all groups)."""
        return self.out_h * self.out_w * self.taps * self.ic * self.oc * self.groups

    def pixels_h(self, a: int) -> int:
        return axis_pixels(self.kh, a, self.stride_h, self.dilation_h)

    def pixels_w(self, b: int) -> int:
        return axis_pixels(self.kw, b, self.stride_w, self.dilation_w)

    def pixels_h_many(self, a: np.ndarray) -> np.ndarray:
        return axis_pixels_many(self.kh, a, self.stride_h, self.dilation_h)

    def pixels_w_many(self, b: np.ndarray) -> np.ndarray:
        return axis_pixels_many(self.kw, b, self.stride_w, self.dilation_w)


@lru_cache(maxsize=4096)
def axis_positions(k: int, a: int, s: int, d: int) -> tuple[int, ...]:
    """Sorted input offsets (relative to the window origin) read by ``a`` outputs along one axis.

    >>> axis_positions(3, 2, 1, 1)
    (0, 1, 2, 3)
    >>> axis_positions(1, 3, 2, 1)   # 1x1 conv, stride 2: the odd pixels are never read
    (0, 2, 4)
    """
    return tuple(sorted({w * s + i * d for w in range(a) for i in range(k)}))


def axis_pixels(k: int, a: int, s: int, d: int) -> int:
    """Number of input pixels ``a`` outputs read along one axis (PW size along that axis)."""
    if d == 1:
        return k + (a - 1) * s if s <= k else a * k
    return len(axis_positions(k, a, s, d))


def axis_pixels_many(k: int, a: np.ndarray, s: int, d: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    if d == 1:
        return k + (a - 1) * s if s <= k else a * k
    flat = [axis_pixels(k, int(x), s, d) for x in a.ravel()]
    return np.array(flat, dtype=np.int64).reshape(a.shape)


def tap_pixel_index(k: int, a: int, s: int, d: int) -> np.ndarray:
    """``idx[w, i]``: the PW pixel (index into :func:`axis_positions`) that tap i of output w reads."""
    pos = axis_positions(k, a, s, d)
    lookup = {p: n for n, p in enumerate(pos)}
    return np.array([[lookup[w * s + i * d] for i in range(k)] for w in range(a)], dtype=np.int64)


@lru_cache(maxsize=8192)
def window_pixel_index(problem: LayerProblem, a: int, b: int) -> np.ndarray:
    """``idx[wy*b + wx, i*Kw + j]``: the PW pixel (row-major index into the PWh x PWw patch) that tap
    (i, j) of output offset (wy, wx) reads."""
    th = tap_pixel_index(problem.kh, a, problem.stride_h, problem.dilation_h)  # (a, Kh)
    tw = tap_pixel_index(problem.kw, b, problem.stride_w, problem.dilation_w)  # (b, Kw)
    idx = th[:, None, :, None] * problem.pixels_w(b) + tw[None, :, None, :]  # (a, b, Kh, Kw)
    idx = idx.reshape(a * b, problem.kh * problem.kw)
    idx.setflags(write=False)  # shared through the cache
    return idx


def window_footprint(problem: LayerProblem, a: int, b: int) -> np.ndarray:
    """Boolean ``(a*b, PWh*PWw)``: which PW pixels each output offset (wy*b + wx) reads.

    Row order of a tile is channel-major, then PW pixel row-major (mapping.md section 6).
    """
    idx = window_pixel_index(problem, a, b)
    fp = np.zeros((a * b, problem.pixels_h(a) * problem.pixels_w(b)), dtype=bool)
    fp[np.arange(a * b)[:, None], idx] = True
    return fp


@lru_cache(maxsize=4096)
def candidate_sizes(n: int, cap: int | None = None) -> np.ndarray:
    """Window sizes along an axis of ``n`` outputs worth trying: for each count q = ceil(n/a) of
    windows, only the smallest a reaching it (a larger a costs at least as many tiles and rows).
    ``cap`` keeps only sizes <= cap (the searches pass the largest window an array can hold).

    Work and memory are O(min(cap, sqrt(n))), not O(n): a size a is the smallest reaching its count
    exactly when ceil(n / ceil(n/a)) == a, so sizes up to sqrt(n) are tested one by one and the larger
    ones are read off the counts q < sqrt(n).

    >>> candidate_sizes(10).tolist()
    [1, 2, 3, 4, 5, 10]
    >>> candidate_sizes(10**12, cap=4).tolist()
    [1, 2, 3, 4]
    """
    limit = n if cap is None else max(0, min(cap, n))
    root = math.isqrt(n)
    small = np.arange(1, min(limit, root + 1) + 1, dtype=np.int64)
    sizes = small[ceil_div(n, ceil_div(n, small)) == small]
    if limit > root + 1:
        q = np.arange(1, root + 2, dtype=np.int64)
        large = ceil_div(n, q)
        sizes = np.unique(np.concatenate([sizes, large[(large > root + 1) & (large <= limit)]]))
    sizes.setflags(write=False)  # shared through the cache
    return sizes


def ceil_div(a, b):
    """Ceiling division for ints and integer numpy arrays."""
    return -(-a // b)
