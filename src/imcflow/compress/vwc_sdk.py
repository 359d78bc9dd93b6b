"""VWC-SDK (Rhe, Ko et al., IEEE JETCAS 2022; compression.md section C): prune the residual input
channels that VW-SDK leaves in an extra row tile.

The plan is torch-free and needs only the layer list, the channel structure and the array. By
default it follows the authors' pruning scripts (djwhsdj/VWC-SDK, ``example/test_SVHN.py``):

1. map every layer with VW-SDK; its window ``PWh x PWw`` gives ICt = floor(R / (PWh*PWw)) input
   channels per row tile (the raw count; a VW-SDK layer that falls back to im2col has the 1x1 window,
   PW = the kernel extent). With ``MappingOptions(search="paper")`` the window is the scripts' own
   search (:func:`~imcflow.mapping.vwsdk.vwc_code_window`), which reproduces the published rounds;
2. a layer with IC >= ICt has a residual IC mod ICt (0 if IC < ICt): those channels fill a whole extra
   row tile, so prune that many of its input channels, i.e. output filters of the layer(s) producing
   them (lowest L1 norm first when the model is pruned);
3. walk from the last channel group back: if a group's pruned width exceeds the next one's, remove one
   more ICt block from it (one pass per round, as the scripts do);
4. repeat (one round = steps 1-3 on the pruned shapes) until a round changes nothing; the walk-back
   runs in every round, residual or not. With a model, every round is fine-tuned and kept only while
   the accuracy drop stays within the rule (the pipeline).

Channels are handled as *groups*: a set of channels produced by one or more layers (a residual stream
is produced by every block that adds to it) and read by one or more layers. A chain of layers has one
group between every two consecutive layers; a torch model's groups come from Torch-Pruning's
``DependencyGraph`` (built once per round, :mod:`imcflow.compress.graph`), so removing a channel
removes it everywhere it is coupled (convs, batch norms, residual adds, the classifier's inputs).

Reconstruction choices (options, with defaults; see ``imcflow methods``):

* ``coupled="min-cycles"``: a group read by several layers gets one residual per reader; the plan picks
  the one whose removal gives the fewest summed VW-SDK cycles over the readers (ties: fewer channels).
  Cycles never grow when channels go, so this is the largest residual unless a smaller one already
  reaches the same cycles; ``"max"`` always takes the largest; ``"skip"`` leaves groups written by
  several layers (residual streams) alone, as the authors' ResNet script mostly does (it prunes the
  channels inside blocks). For a chain all three equal the paper's rule.
* ``require_gain=False`` (the authors'): prune by the rule. True skips a residual whose removal does
  not lower the readers' VW-SDK cycles (a reader on the im2col fallback, whose tiles cut channels
  anywhere, or a coupled reader that gains a tile).
* ``walk_back_rounds="every"`` (the authors'): the walk-back runs in every round; ``"residual"`` runs
  it only in rounds that pruned a residual (this module's behaviour before issue 13).
* ``walk_back="chain"``: the "next" of a group is the set of groups its readers produce (the smallest
  width counts), compared only where both are plain chain links (one producer each), so a residual
  block's inner channels are not forced below the residual stream; ``"dataflow"`` compares every link
  (coupled streams included; on ResNets it removes whole blocks of inner channels); ``"off"`` skips it.
* ``min_channels=1``: no group is pruned below this many channels. ``max_rounds=20`` bounds the rounds.
* grouped/depthwise convolutions are never pruned (their channel coupling is per group).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imcflow.compress.base import (
    CompressionContext,
    CompressionMethod,
    MethodOption,
    StepResult,
    layer_channels,
    register_method,
)
from imcflow.compress.graph import ChannelGraph, ChannelGroup, prune_to_widths, torch_groups
from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import AnyLayer, ConvLayer, Network
from imcflow.mapping import LayerMapping, LayerProblem, MappingOptions, map_layer
from imcflow.mapping.vwsdk import vwc_code_window

# ---------------------------------------------------------------------------------------------------
# Channel structure (torch-free).


def chain_groups(network: Network | Sequence[ConvLayer]) -> tuple[ChannelGroup, ...]:
    """The groups of a plain layer list: layer i feeds layer i+1 when i's out_channels equal i+1's
    in_channels (the ``--layer`` chain rule); elsewhere the chain is broken and nothing is pruned.

    >>> from imcflow.layers import ConvLayer
    >>> g = chain_groups([ConvLayer("a", 3, 8, 3, 8), ConvLayer("b", 8, 8, 3, 8), ConvLayer("c", 4, 2, 1)])
    >>> [(x.name, x.producers, x.consumers) for x in g]
    [('a', ('a',), ('b',))]
    """
    layers = network.layers if isinstance(network, Network) else tuple(network)
    groups = []
    for layer, nxt in zip(layers, layers[1:], strict=False):  # consecutive pairs
        if nxt.in_channels != layer.out_channels:
            continue
        grouped = layer.groups > 1 or nxt.groups > 1
        groups.append(ChannelGroup(layer.name, layer.out_channels, (layer.name,), (nxt.name,),
                                   prunable=not grouped,
                                   reason="grouped convolution" if grouped else ""))
    return tuple(groups)


def apply_widths(network: Network, groups: Sequence[ChannelGroup], widths: Mapping[str, int]) -> Network:
    """The layer list with every group's channels set to ``widths[group]`` (others unchanged)."""
    out_of: dict[str, int] = {}
    in_of: dict[str, int] = {}
    for g in groups:
        w = widths.get(g.name, g.width)
        for p in g.producers:
            out_of[p] = w
        for c in g.consumers:
            in_of[c] = w
    layers = tuple(l.with_changes(in_channels=in_of.get(l.name, l.in_channels),
                                  out_channels=out_of.get(l.name, l.out_channels))
                   for l in network.layers)
    return Network(network.name, layers, network.input_shape, network.source, network.geometry,
                   dict(network.meta))


# ---------------------------------------------------------------------------------------------------
# The plan.


def reader_ict(layer: AnyLayer, array: ArraySpec, mapping: MappingOptions) -> int:
    """ICt of a reader under the plan's search: with ``search="paper"`` the VWC-SDK scripts' own
    window search (:func:`~imcflow.mapping.vwsdk.vwc_code_window`, on the layer's input size in paper
    geometry, as the scripts call it); otherwise the window the VW-SDK mapping picks."""
    if mapping.search == "paper" and isinstance(layer, ConvLayer):  # composite layers: their mapping's
        found = vwc_code_window(LayerProblem.from_layer(layer, "paper"), array)
        return found[2] if found is not None else 0
    return row_tile_channels(map_layer(layer, array, "vwsdk", mapping), array)


def row_tile_channels(mapping: LayerMapping, array: ArraySpec) -> int:
    """ICt of a VW-SDK plan: the raw floor(R / (PWh*PWw)) input channels one row tile holds.

    >>> from imcflow.hardware.array import ArraySpec
    >>> m = map_layer(ConvLayer("c", 128, 128, 3, input_size=8, padding=1), ArraySpec(256, 256), "vwsdk")
    >>> m.window.pw_h * m.window.pw_w, row_tile_channels(m, ArraySpec(256, 256))
    (12, 21)
    """
    return array.rows // (mapping.window.pw_h * mapping.window.pw_w)


@dataclass(frozen=True)
class GroupStep:
    """What one round did to one group: ``residual`` channels of the reader ``consumer`` (whose ICt is
    ``ict``) plus ``extra`` from the walk-back; ``note`` says why nothing was pruned, if so."""

    group: str
    width: int
    consumer: str
    ict: int
    residual: int
    extra: int
    new_width: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "width": self.width, "consumer": self.consumer, "ict": self.ict,
                "residual": self.residual, "extra": self.extra, "new_width": self.new_width,
                "note": self.note}


@dataclass(frozen=True)
class PlanRound:
    index: int
    steps: tuple[GroupStep, ...]
    network: Network = field(compare=False)

    @property
    def widths(self) -> dict[str, int]:
        return {s.group: s.new_width for s in self.steps}

    def to_dict(self) -> dict[str, Any]:
        return {"layers": layer_channels(self.network)}


@dataclass(frozen=True)
class VwcPlan:
    """The rounds of VWC-SDK on a layer list; ``to_dict()`` is the ``--plan-only`` JSON."""

    network: Network = field(compare=False)
    array: ArraySpec
    mapping: MappingOptions
    groups: tuple[ChannelGroup, ...]
    rounds: tuple[PlanRound, ...]

    @property
    def final_network(self) -> Network:
        return self.rounds[-1].network if self.rounds else self.network

    def to_dict(self) -> dict[str, Any]:
        return {"rounds": [r.to_dict() for r in self.rounds]}

    def render(self) -> str:
        """The ``--plan-only`` text: each round's changed channel groups, the channels per layer
        before and after, and VW-SDK cycles before and after."""
        from imcflow.mapping import map_network
        from imcflow.report.table import render_table

        a = self.array
        parts = [f"VWC-SDK plan for {self.network.name} on {a.rows}x{a.cols} arrays "
                 f"(C'={a.usable_cols}), geometry={self.mapping.geometry}, search={self.mapping.search}: "
                 f"{len(self.rounds)} round(s)"]
        for r in self.rounds:
            rows = [[s.group, s.consumer, s.width, s.ict, s.residual, s.extra, s.new_width]
                    for s in r.steps if s.new_width != s.width]
            parts.append(render_table(["channel group", "ICt from", "width", "ICt", "residual",
                                       "walk-back", "new width"], rows, f"\nround {r.index}"))
        before = map_network(self.network, a, ("vwsdk",), self.mapping).totals("vwsdk")
        after = map_network(self.final_network, a, ("vwsdk",), self.mapping).totals("vwsdk")
        rows = [[o.name, o.in_channels, o.out_channels, n.in_channels, n.out_channels]
                for o, n in zip(self.network.layers, self.final_network.layers, strict=True)]
        parts.append(render_table(["layer", "IC", "OC", "IC after", "OC after"], rows, "\nchannels"))
        parts.append(f"\nVW-SDK cycles: {before.cycles:,} -> {after.cycles:,} "
                     f"({before.cycles / after.cycles:.3f}x)")
        return "\n".join(parts)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{"round": r.index, **s.to_dict()} for r in self.rounds for s in r.steps])


@dataclass(frozen=True)
class PlanSettings:
    """The plan's options (see the module docstring)."""

    coupled: str = "min-cycles"
    require_gain: bool = False
    walk_back: str = "chain"
    walk_back_rounds: str = "every"
    min_channels: int = 1
    max_rounds: int = 20

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PlanSettings:
        return cls(**{k: options[k] for k in cls.__dataclass_fields__ if k in options})


def _cycles(layer: AnyLayer, array: ArraySpec, mapping: MappingOptions) -> int:
    return map_layer(layer, array, "vwsdk", mapping).cycles


def plan_round(network: Network, groups: Sequence[ChannelGroup], widths: Mapping[str, int],
               array: ArraySpec, mapping: MappingOptions, settings: PlanSettings = PlanSettings()
               ) -> tuple[tuple[GroupStep, ...], dict[str, int]]:
    """One round of steps 1-3 on the layer list at ``widths``; returns the steps and the new widths."""
    current = apply_widths(network, groups, widths)
    by_name = {l.name: l for l in current.layers}
    new = dict(widths)
    steps: dict[str, GroupStep] = {}
    block: dict[str, int] = {}  # the ICt a walk-back removes from each group
    for g in groups:
        width = widths[g.name]
        if not g.prunable:
            steps[g.name] = GroupStep(g.name, width, "", 0, 0, 0, width, g.reason or "not prunable")
            continue
        if settings.coupled == "skip" and len(g.producers) > 1:
            steps[g.name] = GroupStep(g.name, width, "", 0, 0, 0, width, "coupled group (coupled=skip)")
            continue
        readers = [by_name[c] for c in g.consumers]
        per = []  # (reader, ICt, residual)
        for r in readers:
            ict = reader_ict(r, array, mapping)
            per.append((r, ict, width % ict if 0 < ict <= width else 0))
        block[g.name] = per[0][1]
        candidates = sorted({res for _, _, res in per if res > 0 and width - res >= settings.min_channels})
        if not candidates:
            steps[g.name] = GroupStep(g.name, width, per[0][0].name, per[0][1], 0, 0, width)
            continue

        def cycles_at(w: int, readers: list[AnyLayer] = readers) -> int:  # bound now (B023)
            return sum(_cycles(r.with_changes(in_channels=w), array, mapping) for r in readers)

        if settings.coupled == "max":
            pick = candidates[-1]
        else:
            pick = min(candidates, key=lambda res: (cycles_at(width - res), res))
        reader, ict, _ = next(p for p in per if p[2] == pick)
        block[g.name] = ict
        if settings.require_gain and cycles_at(width - pick) >= cycles_at(width):
            steps[g.name] = GroupStep(g.name, width, reader.name, ict, 0, 0, width,
                                      f"removing {pick} channels does not lower VW-SDK cycles")
            continue
        new[g.name] = width - pick
        steps[g.name] = GroupStep(g.name, width, reader.name, ict, pick, 0, width - pick)
    # The authors' scripts walk back in every round, so rounds go on until neither a residual nor the
    # walk-back changes anything; walk_back_rounds="residual" walks back only after a residual.
    if settings.walk_back != "off" and (settings.walk_back_rounds == "every"
                                        or any(s.residual for s in steps.values())):
        _walk_back(network, groups, new, steps, block, settings)
    return tuple(steps[g.name] for g in groups), new


def _walk_back(network: Network, groups: Sequence[ChannelGroup], new: dict[str, int],
               steps: dict[str, GroupStep], block: Mapping[str, int], settings: PlanSettings) -> None:
    order = {l.name: i for i, l in enumerate(network.layers)}
    produced_by = {p: g.name for g in groups for p in g.producers}
    prunable = [g for g in groups if g.prunable]
    # From the last group (in the layer order of its first producer) back to the first.
    chain_only = settings.walk_back == "chain"
    single = {g.name for g in groups if len(g.producers) == 1}
    for g in sorted(prunable, key=lambda g: min(order[p] for p in g.producers), reverse=True):
        nexts = {produced_by[c] for c in g.consumers if c in produced_by}
        if chain_only:
            nexts = nexts & single if g.name in single else set()
        if not nexts:
            continue
        limit = min(new[n] for n in nexts)
        ict = block.get(g.name, 0)
        if new[g.name] > limit and ict and new[g.name] - ict >= settings.min_channels:
            new[g.name] -= ict
            s = steps[g.name]
            steps[g.name] = GroupStep(s.group, s.width, s.consumer, s.ict or ict, s.residual,
                                      s.extra + ict, new[g.name], s.note)


def vwc_plan(network: Network, array: ArraySpec, mapping: MappingOptions | None = None,
             groups: Sequence[ChannelGroup] | None = None,
             settings: PlanSettings = PlanSettings()) -> VwcPlan:
    """Rounds of VWC-SDK until a round changes nothing (or ``max_rounds``).

    ``groups`` default to :func:`chain_groups` of the layer list. Worked example on a 256-row array
    (1-bit weights, C' = 256): a 3x3 conv on 8x8 with IC = OC = 128 and padding 1 gets VW-SDK's
    window 4x3 (a=2 by b=1 outputs, PW 12 pixels), so ICt = floor(256/12) = 21 and 128 mod 21 = 2 of
    its input channels (outputs of "a") are pruned: 7 row tiles become 6.

    >>> from imcflow.hardware.array import ArraySpec
    >>> net = Network("n", (ConvLayer("a", 16, 128, 3, 8, padding=1),
    ...                     ConvLayer("b", 128, 128, 3, 8, padding=1)))
    >>> plan = vwc_plan(net, ArraySpec(256, 256))
    >>> [(s.group, s.ict, s.residual, s.new_width) for s in plan.rounds[0].steps]
    [('a', 21, 2, 126)]
    """
    mapping = mapping or MappingOptions(geometry=network.geometry)  # type: ignore[arg-type]
    groups = tuple(chain_groups(network) if groups is None else groups)
    names = {l.name for l in network.layers}
    for g in groups:
        missing = [n for n in (*g.producers, *g.consumers) if n not in names]
        if missing:
            raise ConfigError(f"channel group {g.name!r} names layers not in network "
                              f"{network.name!r}: {missing}")
    widths = {g.name: g.width for g in groups}
    rounds = []
    for index in range(settings.max_rounds):
        steps, new = plan_round(network, groups, widths, array, mapping, settings)
        if new == widths:
            break
        widths = new
        rounds.append(PlanRound(index + 1, steps, apply_widths(network, groups, widths)))
    return VwcPlan(network, array, mapping, groups, tuple(rounds))


# ---------------------------------------------------------------------------------------------------
# The torch side: channel groups and pruning come from the one dependency graph (compress/graph.py).


def model_widths(groups: Sequence[ChannelGroup]) -> dict[str, int]:
    return {g.name: g.width for g in groups}


# ---------------------------------------------------------------------------------------------------
# The method.


class VwcSdk(CompressionMethod):
    name = "vwc-sdk"
    description = ("VWC-SDK (JETCAS 2022): prune the residual input channels VW-SDK leaves in an extra "
                   "row tile, lowest-L1 filters first, round after round while accuracy holds")
    iterative = True
    changes = "channels"
    options = (
        MethodOption("coupled", "min-cycles", "a group read by several layers: pick the residual "
                     "giving the fewest summed VW-SDK cycles, or the largest; skip: never prune a "
                     "group written by several layers (residual stream)", ("min-cycles", "max", "skip")),
        MethodOption("require_gain", False, "skip a residual whose removal does not lower the "
                     "readers' VW-SDK cycles (the authors prune by the rule: false)"),
        MethodOption("walk_back", "chain", "after the residuals: a group wider than the groups its "
                     "readers produce loses one more ICt block (chain: plain chain links only; "
                     "dataflow: every link)", ("chain", "dataflow", "off")),
        MethodOption("walk_back_rounds", "every", "run the walk-back in every round, as the authors' "
                     "scripts do (rounds stop when nothing changes), or only after a residual",
                     ("every", "residual")),
        MethodOption("min_channels", 1, "no group is pruned below this many channels", minimum=1),
        MethodOption("max_rounds", 20, "upper bound on pruning rounds", minimum=1),
    )

    def plan(self, network: Network, array: ArraySpec, mapping: MappingOptions,
             options: Mapping[str, Any], structure: Sequence[ChannelGroup] | None = None) -> VwcPlan:
        return vwc_plan(network, array, mapping, structure, PlanSettings.from_options(options))

    def apply(self, model: Any, ctx: CompressionContext) -> StepResult:
        settings = PlanSettings.from_options(ctx.options)
        if ctx.round >= settings.max_rounds:
            return StepResult(False, model, {"note": f"max_rounds={settings.max_rounds} reached"})
        graph = ChannelGraph.build(model, ctx.input_shape)  # the one graph of this round
        groups = graph.groups()
        widths = model_widths(groups)
        steps, new = plan_round(ctx.network, groups, widths, ctx.array, ctx.mapping, settings)
        summary: dict[str, Any] = {"steps": [s.to_dict() for s in steps if s.new_width != s.width]}
        if new == widths:
            return StepResult(False, model, summary)
        removed = graph.prune({k: v for k, v in new.items() if v != widths[k]})
        summary["removed"] = {k: len(v) for k, v in removed.items()}
        return StepResult(True, model, summary)


register_method(VwcSdk())

__all__ = ["ChannelGroup", "GroupStep", "PlanRound", "PlanSettings", "VwcPlan", "VwcSdk", "apply_widths",
           "chain_groups", "model_widths", "plan_round", "prune_to_widths", "row_tile_channels",
           "torch_groups", "vwc_plan"]
