"""Low-rank and group low-rank convolutions (compression.md section A): SVD factors, torch modules, the
choice of rank and groups per layer, and the conversion of a model and its layer list.

Factorisation (numpy, float64). The matrix view of a conv is W (OC x IC*Kh*Kw). With ``rank_groups`` g
and ``split="input"`` (default) W = [W_1 | ... | W_g] along input channels and each block is replaced by
its rank-k truncated SVD W_i ~ L_i R_i with L_i = U_k S_k^(1/2), R_i = S_k^(1/2) V_k^T: R is a grouped
KxK conv (groups g, IC -> g*k) and L a dense 1x1 conv g*k -> OC. ``split="output"`` stacks blocks along
output channels: R dense (IC -> g*k), L grouped (groups g). Because the restriction of the best rank-k
matrix to a block has rank <= k, the per-block error never exceeds the plain rank-k error.

Choice of (k, g) per layer (:func:`plan_lowrank`, a registry of policies):

* ``uniform``: the same k and g everywhere (k clipped to each block's full rank);
* ``ratio``: for the given g, the largest k whose factors hold at most ``ratio`` x the layer's weights;
* ``energy``: for the given g, the smallest k keeping ``energy`` of the squared singular values (summed
  over the g blocks);
* ``array-aware``: for every g in ``group_choices`` take the ``ratio`` (or ``energy``) rank, map the
  factors on the array with ``mapping_method`` and keep the g with the fewest cycles (ties: the smaller
  SVD error, then the smaller g). Same parameter budget, fewest cycles on *this* array.

Which layers are decomposed: every groups=1 conv except (by default) the first one; linear layers
(the classifier) are never decomposed unless named explicitly in ``layers``.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from imcflow.errors import ConfigError
from imcflow.frontends.torch_trace import trace_layers
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer, LowRankLayer, Network
from imcflow.layers.lowrank import Split
from imcflow.mapping import MappingOptions, get_strategy
from imcflow.mapping.lowrank import map_lowrank
from imcflow.registry import Registry

# ---------------------------------------------------------------------------------------------------
# Factorisation (numpy).


def _blocks(weight: np.ndarray, rank_groups: int, split: str) -> list[np.ndarray]:
    """The g matrix blocks W_i (rows = output channels, cols = input channel x tap)."""
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim == 2:
        w = w[:, :, None, None]
    oc, ic = w.shape[:2]
    if split == "input":
        if ic % rank_groups:
            raise ConfigError(f"rank_groups={rank_groups} must divide the input channels ({ic})")
        step = ic // rank_groups
        return [w[:, i * step:(i + 1) * step].reshape(oc, -1) for i in range(rank_groups)]
    if split == "output":
        if oc % rank_groups:
            raise ConfigError(f"rank_groups={rank_groups} must divide the output channels ({oc})")
        step = oc // rank_groups
        return [w[i * step:(i + 1) * step].reshape(step, -1) for i in range(rank_groups)]
    raise ConfigError(f"split must be 'input' or 'output', got {split!r}")


def svd_factors(weight: np.ndarray, rank: int, rank_groups: int = 1,
                split: Split = "input") -> tuple[np.ndarray, np.ndarray]:
    """Truncated-SVD factors ``(r_weight, l_weight)`` as conv weights.

    ``r_weight``: (g*k, IC/g, Kh, Kw) for ``split="input"``, (g*k, IC, Kh, Kw) for ``"output"``;
    ``l_weight``: (OC, g*k, 1, 1) for ``"input"``, (OC, k, 1, 1) for ``"output"`` (grouped L).

    >>> w = np.arange(8.0).reshape(2, 4, 1, 1)          # rank 2: full rank reproduces it
    >>> r, l = svd_factors(w, 2)
    >>> bool(np.allclose(compose_factors(r, l, 1, "input"), w))
    True
    """
    w = np.asarray(weight, dtype=np.float64)
    shape = w.shape if w.ndim == 4 else (*w.shape, 1, 1)
    oc, ic, kh, kw = shape
    blocks = _blocks(w, rank_groups, split)
    full = min(blocks[0].shape)
    if not 1 <= rank <= full:
        raise ConfigError(f"rank must be in [1, {full}] for {blocks[0].shape[0]}x{blocks[0].shape[1]} "
                          f"blocks (rank_groups={rank_groups}, split={split}), got {rank}")
    rs, ls = [], []
    for blk in blocks:
        u, s, vt = np.linalg.svd(blk, full_matrices=False)
        root = np.sqrt(s[:rank])
        ls.append(u[:, :rank] * root[None, :])
        rs.append(root[:, None] * vt[:rank])
    g, k = rank_groups, rank
    if split == "input":
        r_w = np.concatenate(rs).reshape(g * k, ic // g, kh, kw)
        l_w = np.concatenate(ls, axis=1).reshape(oc, g * k, 1, 1)
    else:
        r_w = np.concatenate(rs).reshape(g * k, ic, kh, kw)
        l_w = np.concatenate(ls, axis=0).reshape(oc, k, 1, 1)
    return r_w, l_w


def compose_factors(r_weight: np.ndarray, l_weight: np.ndarray, rank_groups: int,
                    split: Split) -> np.ndarray:
    """The dense (OC, IC, Kh, Kw) weight that conv(L) after conv(R) applies (the product L R)."""
    g = rank_groups
    gk = r_weight.shape[0]
    k = gk // g
    oc = l_weight.shape[0]
    if split == "input":
        icg = r_weight.shape[1]
        out = np.zeros((oc, icg * g, *r_weight.shape[2:]))
        lm = l_weight.reshape(oc, gk)
        for i in range(g):
            out[:, i * icg:(i + 1) * icg] = np.tensordot(lm[:, i * k:(i + 1) * k],
                                                         r_weight[i * k:(i + 1) * k], axes=1)
        return out
    ocg = oc // g
    lm = l_weight.reshape(oc, k)
    return np.concatenate([np.tensordot(lm[i * ocg:(i + 1) * ocg], r_weight[i * k:(i + 1) * k], axes=1)
                           for i in range(g)])


def singular_values(weight: np.ndarray, rank_groups: int = 1, split: Split = "input") -> np.ndarray:
    """(g, min block dim) singular values of each block, descending."""
    return np.stack([np.linalg.svd(b, compute_uv=False) for b in _blocks(weight, rank_groups, split)])


def lowrank_error(weight: np.ndarray, rank: int, rank_groups: int = 1, split: Split = "input") -> float:
    """Frobenius norm ||W - L R|| of the rank-``rank`` factors (from the singular values)."""
    s = singular_values(weight, rank_groups, split)
    return float(np.sqrt((s[:, rank:] ** 2).sum()))


def energy_rank(weight: np.ndarray, energy: float, rank_groups: int = 1, split: Split = "input") -> int:
    """Smallest k whose g blocks keep at least ``energy`` of the squared singular values.

    >>> energy_rank(np.diag([3.0, 1.0, 0.0]), 0.9)
    1
    """
    if not 0.0 < energy <= 1.0:
        raise ConfigError(f"energy must be in (0, 1], got {energy}")
    s2 = singular_values(weight, rank_groups, split) ** 2
    kept = np.cumsum(s2.sum(axis=0))
    total = kept[-1]
    if total == 0:
        return 1
    return int(min(np.searchsorted(kept, energy * total - 1e-12 * total) + 1, s2.shape[1]))


# ---------------------------------------------------------------------------------------------------
# Torch modules.


class GroupLowRankConv2d(nn.Module):
    """conv(L) after conv(R): R a KxK conv IC -> g*k (groups g for ``split="input"``), L a 1x1 conv
    g*k -> OC (groups g for ``split="output"``) with the original bias. Stride, padding and dilation
    are R's. A batch norm after the original conv stays where it was (after L)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 rank: int, rank_groups: int = 1, split: Split = "input", stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, bias: bool = False) -> None:
        super().__init__()
        # A record only for the factor shapes; any input size at least the kernel extent will do.
        ks = kernel_size if isinstance(kernel_size, (tuple, list)) else (kernel_size, kernel_size)
        ds = dilation if isinstance(dilation, (tuple, list)) else (dilation, dilation)
        extent = max(d * (k - 1) + 1 for k, d in zip(ks, ds, strict=True))
        record = LowRankLayer("m", in_channels, out_channels, kernel_size, rank, rank_groups, split,
                              input_size=extent, stride=stride, padding=padding, dilation=dilation,
                              bias=bias)
        self.rank, self.rank_groups, self.split = rank, rank_groups, split
        rl, ll = record.r_layer, record.l_layer
        self.r = nn.Conv2d(rl.in_channels, rl.out_channels, rl.kernel_size, stride=rl.stride,
                           padding=rl.padding, dilation=rl.dilation, groups=rl.groups, bias=False)
        self.l = nn.Conv2d(ll.in_channels, ll.out_channels, 1, groups=ll.groups, bias=bias)

    @property
    def in_channels(self) -> int:
        return self.r.in_channels

    @property
    def out_channels(self) -> int:
        return self.l.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l(self.r(x))

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, rank: int, rank_groups: int = 1,
                  split: Split = "input") -> GroupLowRankConv2d:
        """Factors of a trained ``conv`` by truncated SVD per group (quantized convs stay quantized:
        each factor gets a copy of the weight quantizer, R also the input quantizer)."""
        if not isinstance(conv, nn.Conv2d) or conv.groups != 1 or isinstance(conv.padding, str):
            raise ConfigError(f"low-rank: only Conv2d with groups=1 and integer padding can be "
                              f"decomposed, got {conv!r}")
        new = cls(conv.in_channels, conv.out_channels, _ints(conv.kernel_size), rank, rank_groups, split,
                  conv.stride, conv.padding, conv.dilation, conv.bias is not None)
        r_w, l_w = svd_factors(conv.weight.detach().cpu().numpy(), rank, rank_groups, split)
        if getattr(conv, "weight_quantizer", None) is not None:
            _quantize_factors(new, conv)
        new = new.to(device=conv.weight.device, dtype=conv.weight.dtype)  # before the copy: no rounding
        with torch.no_grad():
            new.r.weight.copy_(torch.from_numpy(r_w))
            new.l.weight.copy_(torch.from_numpy(l_w))
            if conv.bias is not None and new.l.bias is not None:
                new.l.bias.copy_(conv.bias.detach())
        return new

    def record(self, name: str, input_size: tuple[int, int]) -> LowRankLayer:
        """The layer record the mapping engine maps (a composite :class:`LowRankLayer`)."""
        return LowRankLayer(name, self.r.in_channels, self.l.out_channels, _ints(self.r.kernel_size),
                            self.rank, self.rank_groups, self.split, input_size=input_size,
                            stride=_ints(self.r.stride), padding=_ints(self.r.padding),
                            dilation=_ints(self.r.dilation), bias=self.l.bias is not None)


class LowRankConv2d(GroupLowRankConv2d):
    """Plain low rank: :class:`GroupLowRankConv2d` with one group (same signature, g must be 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 rank: int, rank_groups: int = 1, split: Split = "input", stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, bias: bool = False) -> None:
        if rank_groups != 1:
            raise ConfigError(f"LowRankConv2d has one group; use GroupLowRankConv2d for "
                              f"rank_groups={rank_groups}")
        super().__init__(in_channels, out_channels, kernel_size, rank, 1, split, stride, padding,
                         dilation, bias)


def _ints(pair: Any) -> tuple[int, int]:
    """A torch (h, w) size as a pair of ints (R is built with integer padding, never a string)."""
    return int(pair[0]), int(pair[1])


def _quantize_factors(new: GroupLowRankConv2d, conv: nn.Module) -> None:
    """Swap both factors for quantized convs with the original's weight quantizer (R also keeps the
    input quantizer; L's input is R's signed partial sum, left unquantized)."""
    from imcflow.quant import QuantConv2d

    for attr in ("r", "l"):
        old = getattr(new, attr)
        q = QuantConv2d(old.in_channels, old.out_channels, old.kernel_size, stride=old.stride,
                        padding=old.padding, dilation=old.dilation, groups=old.groups,
                        bias=old.bias is not None,
                        weight_quantizer=copy.deepcopy(getattr(conv, "weight_quantizer", None)),
                        input_quantizer=copy.deepcopy(getattr(conv, "input_quantizer", None))
                        if attr == "r" else None)
        setattr(new, attr, q)


# ---------------------------------------------------------------------------------------------------
# Rank / group choice (torch-free given the weights).


@dataclass(frozen=True)
class RankChoice:
    """The factors chosen for one layer; ``error`` is ||W - LR|| / ||W||; ``cycles`` the layer's cycles
    under the plan's mapping method when the policy looked at the array (else None)."""

    layer: str
    rank: int
    rank_groups: int
    split: str
    weights: int
    original_weights: int
    error: float
    cycles: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LowRankPlan:
    """Per-layer (k, g) for the decomposed layers of a network, and how they were chosen."""

    policy: str
    settings: Mapping[str, Any]
    choices: tuple[RankChoice, ...]

    def choice(self, layer: str) -> RankChoice | None:
        for c in self.choices:
            if c.layer == layer:
                return c
        return None

    @property
    def weights(self) -> int:
        return sum(c.weights for c in self.choices)

    @property
    def original_weights(self) -> int:
        return sum(c.original_weights for c in self.choices)

    def apply_to(self, network: Network, combine: str = "sum") -> Network:
        """``network`` with every planned layer replaced by its :class:`LowRankLayer`."""
        return Network(f"{network.name}-lowrank", tuple(
            LowRankLayer.from_conv(l, c.rank, c.rank_groups, c.split, combine)  # type: ignore[arg-type]
            if (c := self.choice(l.name)) is not None else l for l in network.layers),
            input_shape=network.input_shape, source=network.source, geometry=network.geometry,
            meta={**network.meta, "lowrank": self.policy})

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "settings": dict(self.settings), "weights": self.weights,
                "original_weights": self.original_weights,
                "layers": [c.to_dict() for c in self.choices]}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([c.to_dict() for c in self.choices])


def decomposable_layers(network: Network, layers: Iterable[str] | None = None,
                        skip_first: bool = True) -> list[str]:
    """Names of the layers to decompose: ``layers`` if given (checked), else every groups=1 conv
    except the first conv of the network (the classifier, a linear layer, is never included)."""
    by_name = {l.name: l for l in network.layers}
    if layers is not None:
        names = list(layers)
        bad = [n for n in names if n not in by_name]
        if bad:
            raise ConfigError(f"low-rank: no layer named {', '.join(bad)}; layers: {', '.join(by_name)}")
        grouped = [n for n in names if by_name[n].groups != 1]
        if grouped:
            raise ConfigError(f"low-rank: grouped convolutions cannot be decomposed: {', '.join(grouped)}")
        return names
    convs = [l.name for l in network.layers if isinstance(l, ConvLayer) and l.kind == "conv"]
    if skip_first:
        convs = convs[1:]
    return [n for n in convs if by_name[n].groups == 1]


def _record(layer: ConvLayer, rank: int, rank_groups: int, split: str) -> LowRankLayer | None:
    try:
        return LowRankLayer.from_conv(layer, rank, rank_groups, split)  # type: ignore[arg-type]
    except ConfigError:
        return None  # g does not divide the channels, or k beyond full rank: not a candidate


def _max_rank_within(layer: ConvLayer, ratio: float, rank_groups: int, split: str) -> int | None:
    """Largest k with factor weights <= ratio * original weights (None when not even k = 1 fits)."""
    probe = _record(layer, 1, rank_groups, split)
    if probe is None:
        return None
    full = min(probe.block_shape)
    k = int(ratio * layer.weight_count // probe.weight_count)  # weights grow linearly in k
    return min(k, full) if k >= 1 else None


def _choose(layer: ConvLayer, weight: np.ndarray, rank: int, g: int, split: str,
            cycles: int | None = None) -> RankChoice:
    rec = LowRankLayer.from_conv(layer, rank, g, split)  # type: ignore[arg-type]
    norm = float(np.linalg.norm(weight)) or 1.0
    return RankChoice(layer.name, rank, g, split, rec.weight_count, layer.weight_count,
                      lowrank_error(weight, rank, g, split) / norm, cycles)  # type: ignore[arg-type]


def _rank_for(layer: ConvLayer, weight: np.ndarray, g: int, split: str, s: Mapping[str, Any]) -> int | None:
    if s.get("energy") is not None:
        if _record(layer, 1, g, split) is None:
            return None
        return energy_rank(weight, float(s["energy"]), g, split)  # type: ignore[arg-type]
    if s.get("ratio") is not None:
        return _max_rank_within(layer, float(s["ratio"]), g, split)
    probe = _record(layer, 1, g, split)
    return None if probe is None else min(int(s["rank"]), min(probe.block_shape))


def _policy_fixed(layer: ConvLayer, weight: np.ndarray, s: Mapping[str, Any]) -> RankChoice | None:
    g = int(s.get("rank_groups", 1))
    k = _rank_for(layer, weight, g, s["split"], s)
    return None if k is None else _choose(layer, weight, k, g, s["split"])


def _policy_array_aware(layer: ConvLayer, weight: np.ndarray, s: Mapping[str, Any]) -> RankChoice | None:
    array: ArraySpec = s["array"]
    strategy = get_strategy(s.get("mapping_method", "vwsdk"))
    options: MappingOptions = s.get("mapping_options") or MappingOptions()
    best: tuple | None = None
    for g in s.get("group_choices", (1, 2, 4, 8)):
        k = _rank_for(layer, weight, int(g), s["split"], s)
        if k is None:
            continue
        rec = LowRankLayer.from_conv(layer, k, int(g), s["split"])
        cycles = map_lowrank(rec, strategy, array, options).cycles
        c = _choose(layer, weight, k, int(g), s["split"], cycles)
        key = (cycles, round(c.error, 9), g)
        if best is None or key < best[0]:
            best = (key, c)
    return None if best is None else best[1]


_POLICIES: Registry[Callable[[ConvLayer, np.ndarray, Mapping[str, Any]], RankChoice | None]] = Registry(
    "rank policy", {"uniform": _policy_fixed, "ratio": _policy_fixed, "energy": _policy_fixed,
                    "array-aware": _policy_array_aware})


def rank_policies() -> list[str]:
    return _POLICIES.names()


def plan_lowrank(network: Network, weights: Mapping[str, np.ndarray], policy: str = "ratio", *,
                 rank: int = 8, rank_groups: int = 1, ratio: float | None = 0.5,
                 energy: float | None = None, split: Split = "input",
                 layers: Iterable[str] | None = None, skip_first: bool = True,
                 array: ArraySpec | None = None, mapping_method: str = "vwsdk",
                 mapping_options: MappingOptions | None = None,
                 group_choices: Sequence[int] = (1, 2, 4, 8)) -> LowRankPlan:
    """Choose (k, g) for every decomposable layer of ``network`` (see the module docstring).

    ``weights`` maps layer names to their float weights (OC, IC, Kh, Kw). A layer for which no
    candidate fits (e.g. ``ratio`` below one rank's weights) stays dense and is not in the plan.
    ``uniform`` uses ``rank``; ``ratio``/``energy`` use whichever is given (energy wins);
    ``array-aware`` does the same per g in ``group_choices`` and needs ``array``.
    """
    rule = _POLICIES.get(policy)  # unknown names: an error listing the known policies
    if ratio is not None and not 0.0 < ratio <= 1.0 and policy in ("ratio", "array-aware"):
        raise ConfigError(f"ratio must be in (0, 1], got {ratio}")
    if policy == "array-aware" and array is None:
        raise ConfigError("the array-aware rank policy needs the array (e.g. 512x512)")
    # Which rank rule applies: uniform -> rank; ratio -> ratio; energy -> energy; array-aware ->
    # energy when given, else ratio (per g).
    use_energy = policy == "energy" or (policy == "array-aware" and energy is not None)
    use_ratio = policy == "ratio" or (policy == "array-aware" and energy is None)
    if use_energy and energy is None:
        raise ConfigError("the energy rank policy needs energy (a fraction in (0, 1])")
    settings: dict[str, Any] = {"split": split, "rank_groups": rank_groups, "rank": rank,
                                "ratio": ratio if use_ratio else None,
                                "energy": energy if use_energy else None}
    if policy == "array-aware":
        settings.update(array=array, mapping_method=mapping_method, mapping_options=mapping_options,
                        group_choices=tuple(group_choices))
    by_name = {l.name: l for l in network.layers}
    choices = []
    for name in decomposable_layers(network, layers, skip_first):
        if name not in weights:
            raise ConfigError(f"low-rank: no weight given for layer {name!r}")
        layer = by_name[name]
        if not isinstance(layer, ConvLayer):
            raise ConfigError(f"low-rank: layer {name!r} is a {type(layer).__name__}, already composite")
        c = rule(layer, np.asarray(weights[name]), settings)
        if c is not None:
            choices.append(c)
    shown = {k: (v.label if isinstance(v, ArraySpec) else v) for k, v in settings.items()
             if k != "mapping_options"}
    return LowRankPlan(policy, shown, tuple(choices))


# ---------------------------------------------------------------------------------------------------
# Model conversion.


def model_weights(model: nn.Module, input_shape: Sequence[int]) -> tuple[Network, dict[str, np.ndarray]]:
    """The model's layer list (execution order, real input sizes) and float weights by layer name."""
    found = trace_layers(model, input_shape)
    network = Network("model", tuple(t.layer for t in found), input_shape=tuple(input_shape))
    return network, {t.name: t.module.weight.detach().cpu().numpy() for t in found}


def decompose_model(model: nn.Module, plan: LowRankPlan) -> nn.Module:
    """Replace (in place) every planned conv of ``model`` by its SVD-initialised factors."""
    for c in plan.choices:
        parent_name, _, attr = c.layer.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        conv = getattr(parent, attr)
        cls = LowRankConv2d if c.rank_groups == 1 else GroupLowRankConv2d
        setattr(parent, attr, cls.from_conv(conv, c.rank, c.rank_groups, c.split))  # type: ignore[arg-type]
    return model


def lowrank_modules(model: nn.Module) -> dict[str, GroupLowRankConv2d]:
    return {n: m for n, m in model.named_modules() if isinstance(m, GroupLowRankConv2d)}


def fold_lowrank_records(model: nn.Module, records: Sequence[tuple[str, Any]],
                         combine: str = "sum") -> list[tuple[str, Any, list[str]]]:
    """Merge the ``<name>.r`` / ``<name>.l`` entries of a traced layer list into one
    :class:`LowRankLayer` per low-rank module.

    ``records`` is ``[(qualified name, ConvLayer), ...]`` in execution order; returns
    ``[(name, record, [names of the merged entries]), ...]``.
    """
    modules = lowrank_modules(model)
    out: list[tuple[str, Any, list[str]]] = []
    by_name = dict(records)
    done: set[str] = set()
    for name, rec in records:
        owner = name.rpartition(".")[0]
        if owner in modules:
            if owner in done:
                continue
            m = modules[owner]
            r_rec = by_name[f"{owner}.r"]
            lr = m.record(owner, r_rec.input_size)
            if combine != "sum":
                lr = LowRankLayer.from_conv(lr.conv_layer, lr.rank, lr.rank_groups, lr.split,
                                            combine)  # type: ignore[arg-type]
            out.append((owner, lr, [f"{owner}.r", f"{owner}.l"]))
            done.add(owner)
        else:
            out.append((name, rec, [name]))
    return out


def lowrank_network(model: nn.Module, input_shape: Sequence[int], name: str = "model",
                    combine: str = "sum") -> Network:
    """The layer list of a model with low-rank modules, each one :class:`LowRankLayer` record."""
    found = trace_layers(model, input_shape)
    merged = fold_lowrank_records(model, [(t.name, t.layer) for t in found], combine)
    return Network(name, tuple(rec for _, rec, _ in merged), input_shape=tuple(input_shape),
                   source="torch model (low-rank)", geometry="real")
