"""Where sweep points run: local worker processes (default) or a Ray cluster.

An executor takes tasks (lists of points) and yields ``(task index, rows)`` as tasks finish, in any
order; the runner alone writes the cache and the table, so a remote cluster needs no shared disk for
analytic points. Choosing one is a registry lookup by name (:func:`get_executor`).

Ray: ``address=None`` starts a private local cluster (``num_cpus`` = workers, no dashboard, on the
loopback address) and shuts it down afterwards; ``"auto"`` joins the cluster started on this machine
with ``ray start --head``; ``"HOST:PORT"`` joins that head node (``ray://HOST:10001`` uses Ray client).
Every node needs imcflow installed at the same version.
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Protocol

from imcflow.errors import ConfigError, ImcflowError, UnknownNameError, check_int
from imcflow.sweep.points import evaluate_chunk

Task = list[dict[str, Any]]


class Executor(Protocol):
    name: str
    workers: int

    def run(self, tasks: list[Task], work_dir: str,
            networks: Mapping[str, Any]) -> Iterator[tuple[int, list[dict[str, Any]]]]: ...

    def close(self) -> None: ...


def run_task(points: Task, work_dir: str, networks: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One task in a worker; an error names the point that raised it."""
    try:
        return evaluate_chunk(points, work_dir, networks)
    except ImcflowError as exc:
        raise ImcflowError(f"sweep point failed: {exc}") from None


class LocalExecutor:
    """``workers`` processes on this machine. ``start_method``: multiprocessing's (``fork`` by default
    on Linux, which needs no ``if __name__ == "__main__"`` guard in the calling script; ``spawn``
    starts clean interpreters)."""

    name = "local"

    def __init__(self, workers: int = 2, address: str | None = None, start_method: str | None = None):
        if address is not None:
            raise ConfigError("--address applies to --executor ray only")
        self.workers = check_int("workers", workers, 1, 1024)
        self.start_method = start_method
        self._pool: ProcessPoolExecutor | None = None

    def run(self, tasks: list[Task], work_dir: str,
            networks: Mapping[str, Any]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context(self.start_method))
        # Keep a bounded number of tasks in flight so an interrupted run has little work in the air.
        pending: dict[Any, int] = {}
        queue = iter(enumerate(tasks))
        limit = 4 * self.workers
        while True:
            while len(pending) < limit:
                nxt = next(queue, None)
                if nxt is None:
                    break
                pending[self._pool.submit(run_task, nxt[1], work_dir, networks)] = nxt[0]
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield pending.pop(fut), fut.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class RayExecutor:
    """Tasks as Ray remote functions (one CPU each) on a local or existing cluster."""

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None):
        try:
            import ray
        except ModuleNotFoundError:
            raise ConfigError("--executor ray needs the 'ray' package: pip install ray") from None
        self.workers = check_int("workers", workers, 1, 1024)
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            if address is None:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                         configure_logging=False, _node_ip_address="127.0.0.1")
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            self._started = True
        self._remote = ray.remote(num_cpus=1)(run_task)

    def run(self, tasks: list[Task], work_dir: str,
            networks: Mapping[str, Any]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        ray = self._ray
        nets = ray.put(dict(networks))
        pending: dict[Any, int] = {}
        queue = iter(enumerate(tasks))
        limit = 4 * max(1, int(ray.cluster_resources().get("CPU", self.workers)))
        while True:
            while len(pending) < limit:
                nxt = next(queue, None)
                if nxt is None:
                    break
                pending[self._remote.remote(nxt[1], work_dir, nets)] = nxt[0]
            if not pending:
                return
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index = pending.pop(ref)
                try:
                    rows = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.as_instanceof_cause()
                    raise (cause if isinstance(cause, ImcflowError) else ImcflowError(str(cause))) from None
                yield index, rows

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor, "ray": RayExecutor}


def get_executor(name: str, workers: int = 2, address: str | None = None) -> Executor:
    try:
        factory = EXECUTORS[name]
    except KeyError:
        raise UnknownNameError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}") from None
    return factory(workers=workers, address=address)
