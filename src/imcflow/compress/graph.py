"""The channel structure of a torch model: Torch-Pruning's dependency graph, built once per apply.

Every channel method (VWC-SDK, filter pruning, and the channel methods to come) asks the same questions:
which channels are coupled (a *group*: the channels some layers write and others read, a residual
stream included), and "remove these channels everywhere they are coupled". Building Torch-Pruning's
``DependencyGraph`` traces the model, so it is built once, by :meth:`ChannelGraph.build`, and every
query is answered from that one graph (Torch-Pruning's habit: build, then query):

* :meth:`ChannelGraph.groups`: the :class:`ChannelGroup` records (torch-free, for the planners);
* :meth:`ChannelGraph.prune`: remove channels from the model itself (lowest L1 first);
* :meth:`ChannelGraph.pruned_copy`: a pruned deep copy, the model untouched (a search over widths,
  such as filter pruning's bisection, tries many). The copy is pruned by replaying the graph's pruning
  groups on the copy's modules, so it needs no graph of its own.

:func:`build_dependency_graph` is the only place a graph is built (a test counts its calls). A graph
describes the model as it was built: after :meth:`ChannelGraph.prune` it refuses further queries.
Only :class:`ChannelGroup` is torch-free; torch and Torch-Pruning are imported when a graph is built.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imcflow.errors import ConfigError
from imcflow.layers import Network


@dataclass(frozen=True)
class ChannelGroup:
    """A set of coupled channels: ``producers`` write them (their out_channels), ``consumers`` read
    them (their in_channels). Named after the first producer in the layer list."""

    name: str
    width: int
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    prunable: bool = True
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "width": self.width, "producers": list(self.producers),
                "consumers": list(self.consumers), "prunable": self.prunable, "reason": self.reason}


def build_dependency_graph(model: Any, example_inputs: Any) -> Any:
    """Torch-Pruning's ``DependencyGraph`` of ``model`` (eval mode) on ``example_inputs``."""
    import torch_pruning as tp

    was_training = model.training
    model.eval()
    try:
        return tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs, verbose=False)
    finally:
        model.train(was_training)


def _handler_name(handler: Any) -> str:
    return getattr(handler, "__name__", "") or str(handler)


class ChannelGraph:
    """One model's dependency graph and the layer records of the same model, built once.

    ``network`` is the model's layer list (the one tracer's records, names as in the deployed layer
    list); the last weight layer in execution order is the classifier, whose outputs are the network's
    outputs and are never pruned.
    """

    def __init__(self, model: Any, input_shape: Sequence[int], graph: Any, records: Sequence[Any]) -> None:
        self.model = model
        self.input_shape = tuple(input_shape)
        self.graph = graph
        self.records = tuple(records)
        self.network = Network("model", tuple(r.layer for r in self.records), input_shape=self.input_shape)
        # module -> name of its first call (a module called twice is one set of channels)
        self.modules: dict[Any, str] = {}
        for r in self.records:
            self.modules.setdefault(r.module, r.name)
        self._roots: list[Any] | None = None
        self._stale = False

    @classmethod
    def build(cls, model: Any, input_shape: Sequence[int]) -> ChannelGraph:
        """Trace ``model`` once and build its dependency graph once."""
        import torch

        from imcflow.frontends.torch_trace import trace_layers

        records = trace_layers(model, input_shape)
        param = next(model.parameters())
        example = torch.zeros((1, *input_shape), device=param.device)
        return cls(model, input_shape, build_dependency_graph(model, example), records)

    # --- queries ------------------------------------------------------------------------------------
    def _check(self) -> None:
        if self._stale:
            raise ConfigError("this channel graph describes the model before it was pruned; "
                              "build a new one (ChannelGraph.build)")

    def _root_groups(self) -> list[Any]:
        self._check()
        if self._roots is None:
            from torch import nn

            modules = self.modules
            last = list(modules)[-1]
            order = {m: i for i, m in enumerate(modules)}
            found = []
            for group in self.graph.get_all_groups(ignored_layers=[last],
                                                   root_module_types=(nn.Conv2d, nn.Linear)):
                producers = [it.dep.target.module for it in group.items
                             if it.dep.target.module in modules
                             and "out_channels" in _handler_name(it.dep.handler)]
                if producers:
                    found.append((min(producers, key=lambda m: order[m]), group))
            found.sort(key=lambda x: order[x[0]])
            self._roots = [g for _, g in found]
        return self._roots

    def _items(self, group: Any, direction: str) -> list[tuple[Any, list[int]]]:
        seen: dict[Any, list[int]] = {}
        for it in group.items:
            m = it.dep.target.module
            if m in self.modules and direction in _handler_name(it.dep.handler) and m not in seen:
                seen[m] = [int(i) for i in it.idxs]
        return list(seen.items())

    def _describe(self, group: Any) -> ChannelGroup:
        names = self.modules
        producers = self._items(group, "out_channels")
        consumers = self._items(group, "in_channels")
        width = len(producers[0][1])
        grouped = [names[m] for m, _ in producers + consumers if getattr(m, "groups", 1) > 1]
        uneven = [names[m] for m, idx in producers if len(idx) != width]
        reason = ""
        if grouped:
            reason = f"grouped convolution(s) {grouped}"
        elif uneven:
            reason = f"producers {uneven} hold a different number of these channels (concatenation)"
        return ChannelGroup(names[producers[0][0]], width, tuple(names[m] for m, _ in producers),
                            tuple(names[m] for m, _ in consumers), prunable=not reason, reason=reason)

    def groups(self) -> tuple[ChannelGroup, ...]:
        """Every group of coupled channels whose producers are weight layers, in layer order."""
        return tuple(self._describe(g) for g in self._root_groups())

    # --- pruning ------------------------------------------------------------------------------------
    def prune(self, widths: Mapping[str, int]) -> dict[str, list[int]]:
        """Remove channels from the model itself so every named group has ``widths[group]`` channels
        (lowest L1 first, see :meth:`pruned_copy`); returns the removed indices per group. The graph
        is spent afterwards."""
        removed = self._prune(widths, self.model, None)
        self._stale = True
        return removed

    def pruned_copy(self, widths: Mapping[str, int]) -> Any:
        """A deep copy of the model with every named group pruned to ``widths[group]`` channels; the
        model and this graph are unchanged."""
        self._check()
        memo: dict[int, Any] = {}
        trial = copy.deepcopy(self.model, memo)
        self._prune(widths, trial, memo)
        return trial

    def _prune(self, widths: Mapping[str, int], target: Any, memo: dict[int, Any] | None
               ) -> dict[str, list[int]]:
        """Prune ``target`` (the model, or its deep copy with ``memo`` mapping original objects to
        their copies). A channel's importance is the L1 norm of its filters summed over all producing
        layers (for a residual stream: every conv that writes it), read from ``target`` as it is when
        the group's turn comes, so a copy is pruned exactly as the model itself would be."""
        import torch
        import torch_pruning as tp

        def on_target(obj: Any) -> Any:
            return obj if memo is None else memo.get(id(obj), obj)

        by_name = {}
        for g in self._root_groups():
            desc = self._describe(g)
            by_name[desc.name] = (desc, g)
        unknown = sorted(set(widths) - set(by_name))
        if unknown:
            raise ConfigError(f"no channel group named {unknown} in the model; groups: {sorted(by_name)}")
        removed: dict[str, list[int]] = {}
        for name, goal in widths.items():
            desc, group = by_name[name]
            if goal >= desc.width:
                continue
            if not desc.prunable:
                raise ConfigError(f"channel group {name!r} cannot be pruned: {desc.reason}")
            importance = torch.zeros(desc.width)
            producers = self._items(group, "out_channels")
            for module, idxs in producers:
                w = on_target(module).weight.detach().abs().flatten(1).sum(1).cpu()
                importance += w[idxs]
            drop = sorted(int(i) for i in torch.argsort(importance, stable=True)[:desc.width - goal])
            root = next(m for m, n in self.modules.items() if n == name)
            linear = isinstance(root, torch.nn.Linear)
            fn = tp.prune_linear_out_channels if linear else tp.prune_conv_out_channels
            # Indices are positions of the root layer's own channels (producers share the order).
            root_idx = dict(producers)[root]
            pruning = self.graph.get_pruning_group(root, fn, idxs=[root_idx[i] for i in drop])
            if not self.graph.check_pruning_group(pruning):
                raise ConfigError(f"Torch-Pruning refuses to prune channel group {name!r} to {goal}")
            if memo is None:
                pruning.prune()
            else:
                _replay(self.graph, pruning, target, on_target)
            removed[name] = drop
        return removed


def _replay(graph: Any, pruning: Any, target: Any, on_target: Any) -> None:
    """Apply a pruning group of ``graph`` to the copies of its modules (what ``Group.prune`` does to the
    originals: every dependency's handler on its target, an unwrapped parameter replaced by name)."""
    from torch_pruning import _helpers, ops

    for dep, idxs in pruning:
        plain = _helpers.to_plain_idxs(idxs) if idxs and isinstance(idxs[0], _helpers._HybridIndex) else idxs
        dep.handler.__self__.pruning_dim = dep.target.pruning_dim
        if dep.target.type == ops.OPTYPE.PARAMETER:
            path = graph._param_to_name[dep.target.module].split(".")
            parent = target.get_submodule(".".join(path[:-1])) if len(path) > 1 else target
            setattr(parent, path[-1], dep.handler(on_target(dep.target.module), plain))
        else:
            dep.handler(on_target(dep.target.module), plain)


def torch_groups(model: Any, input_shape: Sequence[int]) -> tuple[ChannelGroup, ...]:
    """The channel groups of a torch model (one graph built for this call)."""
    return ChannelGraph.build(model, input_shape).groups()


def prune_to_widths(model: Any, input_shape: Sequence[int],
                    widths: Mapping[str, int]) -> dict[str, list[int]]:
    """Remove channels of ``model`` so every named group has ``widths[group]`` channels, lowest L1
    first (one graph built for this call; see :meth:`ChannelGraph.prune`). Returns the removed
    indices per group."""
    return ChannelGraph.build(model, input_shape).prune(widths)
