"""Run a sweep: sample points, skip the cached ones, evaluate the rest on an executor, write one table.

Resuming is rerunning: every finished point is stored under its content address
(:func:`~imcflow.sweep.points.point_key`) the moment its result arrives, so an interrupted sweep loses
at most the points in flight, and an unchanged point is never computed twice (also across sweeps that
share a cache directory). Layout of ``out_dir``::

    spec.json        the validated spec (a different spec in the same folder is refused)
    cache/ab/<key>.json   one result row per point (unless another cache directory is given)
    trained/<key>/   compression runs of trained points (resumable themselves)
    results.csv, results.parquet   every input and output column, one row per point
    sweep.log        progress and timing (the CLI's log file)
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from imcflow.errors import ConfigError
from imcflow.io import atomic_write_files, atomic_write_text, dumps_json, make_output_dir
from imcflow.sweep.executors import Executor, get_executor
from imcflow.sweep.points import INPUT_COLUMNS, OUTPUT_COLUMNS, point_key, trained_run_key
from imcflow.sweep.spec import SweepSpec, axis_sizes, grid_indices, random_indices

log = logging.getLogger("imcflow.sweep")


class PointCache:
    """Result rows stored by content address: ``<directory>/<key[:2]>/<key>.json``."""

    def __init__(self, directory: str):
        self.directory = directory

    def path(self, key: str) -> str:
        return os.path.join(self.directory, key[:2], f"{key}.json")

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            with open(self.path(key), encoding="utf-8") as fh:
                return json.load(fh)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put(self, key: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``row`` and return it as it reads back (so fresh and cached rows are identical)."""
        os.makedirs(os.path.dirname(self.path(key)), exist_ok=True)
        text = dumps_json(dict(sorted(row.items())), indent=None)
        atomic_write_text(self.path(key), text)
        return json.loads(text)


class Progress:
    """Points done, rate and time left: a tqdm bar on a terminal, and a log line every few seconds."""

    def __init__(self, total: int, name: str, bar: bool, every_s: float = 5.0):
        self.total, self.name, self.done, self.every_s = total, name, 0, every_s
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if bar and total and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"sweep {name}", unit="pt", smoothing=0.1)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            left = (self.total - self.done) / rate if rate > 0 else math.inf
            log.info("sweep %s: %d/%d points, %.1f points/s, %.0f s left", self.name, self.done,
                     self.total, rate, left)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass(frozen=True)
class SweepResult:
    """Rows of every point of the sweep (in sampling order) and what this call did."""

    spec: SweepSpec
    rows: tuple[dict[str, Any], ...] = field(hash=False)
    computed: int
    cached: int
    seconds: float
    files: tuple[str, ...] = ()

    def to_frame(self):
        """One row per point: every input column, then every output column, then the cache key."""
        return results_frame(self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "points": len(self.rows), "computed": self.computed,
                "cached": self.cached, "seconds": self.seconds, "files": list(self.files)}


def _chunks(points: list[dict[str, Any]], workers: int, chunk: int | None) -> list[list[int]]:
    """Task index lists: trained points first (they are long), one task per compression run; then
    analytic points in runs of consecutive points (which share a mapping in a worker's cache)."""
    runs: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        if p["compression"] != "none":
            runs.setdefault(trained_run_key(p), []).append(i)
    analytic = [i for i, p in enumerate(points) if p["compression"] == "none"]
    size = chunk or max(1, min(200, math.ceil(len(analytic) / (workers * 8))))
    return [*runs.values()] + [analytic[k:k + size] for k in range(0, len(analytic), size)]


class _Evaluator:
    """Evaluates lists of points through the cache and an executor, counting what it did."""

    def __init__(self, spec: SweepSpec, cache: PointCache, executor: Executor, work_dir: str,
                 chunk: int | None, bar: bool):
        self.spec, self.cache, self.executor, self.work_dir = spec, cache, executor, work_dir
        self.chunk, self.bar = chunk, bar
        self.computed = self.cached = 0
        self._networks: dict[str, Any] = {}

    def networks(self, points: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        from imcflow.sweep.points import _network

        for p in points:
            if p["compression"] == "none" and p["model"] not in self._networks:
                self._networks[p["model"]] = _network(p["model"])
        return self._networks

    def __call__(self, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        keys = [point_key(p) for p in points]
        rows: list[dict[str, Any] | None] = [self.cache.get(k) for k in keys]
        missing = [i for i, r in enumerate(rows) if r is None]
        self.cached += len(points) - len(missing)
        if missing:
            todo = [points[i] for i in missing]
            tasks = _chunks(todo, self.executor.workers, self.chunk)
            payload = [[todo[i] for i in t] for t in tasks]
            progress = Progress(len(todo), self.spec.name, self.bar)
            try:
                for t, found in self.executor.run(payload, self.work_dir, self.networks(todo)):
                    for i, row in zip(tasks[t], found, strict=True):
                        k = missing[i]
                        rows[k] = self.cache.put(keys[k], {**row, "key": keys[k]})
                        self.computed += 1
                    progress.update(len(found))
            finally:
                progress.close()
        return rows  # type: ignore[return-value]


def _score(row: Mapping[str, Any], column: str, direction: str) -> float:
    v = row.get(column)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return math.inf
    return float(v) if direction == "min" else -float(v)


def _evolve(spec: SweepSpec, evaluate: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
            ) -> list[dict[str, Any]]:
    """A seeded genetic search over axis indices: the best half survives, children are uniform
    crossovers of two survivors with each axis mutated with probability ``mutation``."""
    s = spec.sampling
    rng = np.random.default_rng(s.seed)
    sizes = axis_sizes(spec)
    population = random_indices(spec, s.population, s.seed)
    evaluated: dict[tuple[int, ...], dict[str, Any]] = {}
    for generation in range(s.generations):
        new = [g for g in population if g not in evaluated]
        for g, row in zip(new, evaluate([spec.point(g) for g in new]), strict=True):
            evaluated[g] = row
        log.info("sweep %s: generation %d/%d, %d points evaluated", spec.name, generation + 1,
                 s.generations, len(evaluated))
        if generation == s.generations - 1:
            break
        ranked = sorted(evaluated, key=lambda g: (_score(evaluated[g], s.objective, s.direction), g))
        parents = ranked[:max(2, s.population // 2)]
        children: list[tuple[int, ...]] = []
        for _ in range(50 * s.population):
            if len(children) == s.population:
                break
            p1 = parents[int(rng.integers(len(parents)))]
            p2 = parents[int(rng.integers(len(parents)))]
            child = tuple(p1[i] if rng.random() < 0.5 else p2[i] for i in range(len(sizes)))
            child = tuple(int(rng.integers(sizes[i])) if rng.random() < s.mutation else v
                          for i, v in enumerate(child))
            if child not in evaluated and child not in children:
                children.append(child)
        if not children:  # the space is exhausted
            break
        population = children
    return list(evaluated.values())


def _check_out_dir(spec: SweepSpec, out_dir: str, overwrite: bool) -> None:
    make_output_dir(out_dir)
    saved = os.path.join(out_dir, "spec.json")
    text = json.dumps(spec.to_dict(), indent=2, sort_keys=True)
    if os.path.isfile(saved) and not overwrite:
        with open(saved, encoding="utf-8") as fh:
            if fh.read() != text:
                raise ConfigError(f"{out_dir} holds another sweep (its spec.json differs); use another "
                                  f"--out, or --overwrite to replace its results")
    atomic_write_text(saved, text)


def results_frame(rows: Sequence[Mapping[str, Any]]):
    import pandas as pd

    return pd.DataFrame(list(rows), columns=[*INPUT_COLUMNS, *OUTPUT_COLUMNS, "key"])


def write_table(rows: Sequence[Mapping[str, Any]], out_dir: str) -> tuple[str, ...]:
    """``results.csv`` and (with pyarrow) ``results.parquet``; returns the paths written."""
    frame = results_frame(rows)
    paths = []
    csv = os.path.join(out_dir, "results.csv")
    atomic_write_text(csv, frame.to_csv(index=False))
    paths.append(csv)
    try:
        import pyarrow  # noqa: F401
    except ModuleNotFoundError:
        log.warning("pyarrow is not installed: results.parquet not written")
    else:
        pq = os.path.join(out_dir, "results.parquet")
        atomic_write_files(pq, lambda tmp: frame.to_parquet(tmp, index=False))
        paths.append(pq)
    return tuple(paths)


def run_sweep(spec: SweepSpec, out_dir: str, executor: str | Executor = "local", workers: int = 2,
              address: str | None = None, cache_dir: str | None = None, chunk: int | None = None,
              progress: bool = True, overwrite: bool = False, write: bool = True) -> SweepResult:
    """Evaluate ``spec`` and write its table into ``out_dir`` (see the module docstring)."""
    t0 = time.perf_counter()
    if write:
        _check_out_dir(spec, out_dir, overwrite)
    cache = PointCache(cache_dir or os.path.join(out_dir, "cache"))
    ex = get_executor(executor, workers, address) if isinstance(executor, str) else executor
    evaluate = _Evaluator(spec, cache, ex, os.path.abspath(out_dir), chunk, progress)
    log.info("sweep %s: %d-point product, sampling %s, executor %s with %d workers", spec.name,
             spec.size, spec.sampling.method, ex.name, ex.workers)
    try:
        s = spec.sampling
        if s.method == "evolutionary":
            rows = _evolve(spec, evaluate)
        else:
            indices = (random_indices(spec, s.points or 0, s.seed) if s.method == "random"
                       else list(grid_indices(spec)))
            rows = evaluate([spec.point(i) for i in indices])
    finally:
        if isinstance(executor, str):
            ex.close()
    files = write_table(rows, out_dir) if write else ()
    seconds = time.perf_counter() - t0
    log.info("sweep %s: %d points (%d computed, %d cached) in %.1f s", spec.name, len(rows),
             evaluate.computed, evaluate.cached, seconds)
    return SweepResult(spec, tuple(rows), evaluate.computed, evaluate.cached, seconds, files)


def with_mappings(spec: SweepSpec, extra: Sequence[str]) -> SweepSpec:
    """``spec`` with more values on its mapping axis (``--objective``)."""
    mappings = tuple(dict.fromkeys((*spec.axes["mapping"], *extra)))
    return replace(spec, axes={**spec.axes, "mapping": mappings})
