"""One generic name -> object registry, used for every pluggable kind (strategies, compression methods,
presets, network loaders, quantizers, ...).

* :meth:`Registry.register` refuses a name that is taken unless ``replace=True``;
* :meth:`Registry.get` of an unknown name raises :class:`~imcflow.errors.UnknownNameError` listing the
  known names;
* :meth:`Registry.override` registers an object for the duration of a ``with`` block and restores the
  registry afterwards (tests use it instead of patching private dictionaries);
* :meth:`Registry.names` lists names in registration order;
* a registry made with ``entry_points="group"`` also finds third-party objects published under that
  Python entry-point group (``[project.entry-points."imcflow.strategies"]`` in a plugin's
  pyproject.toml). An entry is a class (instantiated without arguments) or an instance; entries are
  loaded lazily, once, the first time the registry is read.

>>> colours = Registry("colour")
>>> colours.register("red", 0xFF0000)
16711680
>>> colours.register("red", 1)
Traceback (most recent call last):
...
imcflow.errors.ConfigError: colour 'red' is already registered; pass replace=True to replace it
>>> with colours.override("blue", 0x0000FF):
...     colours.names()
['red', 'blue']
>>> colours.names()
['red']
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from imcflow.errors import ConfigError, ImcflowError, UnknownNameError

T = TypeVar("T")

_MISSING = object()


class Registry(Generic[T]):
    """Names -> objects of one kind. ``kind`` names the kind in error messages ("mapping method");
    ``items`` are registered first, in their order; ``check(obj)`` may raise :class:`ConfigError` to
    refuse objects of the wrong type; ``normalize`` maps a user-typed name to the key (e.g.
    ``str.lower`` for file suffixes)."""

    def __init__(self, kind: str, items: Mapping[str, T] | None = None, *,
                 entry_points: str | None = None, check: Callable[[Any], None] | None = None,
                 normalize: Callable[[str], str] | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_points
        self._check = check
        self._normalize = normalize or (lambda name: name)
        self._items: dict[str, T] = {}
        self._plugins_loaded = entry_points is None
        for name, obj in (items or {}).items():
            self.register(name, obj)

    # --- writing ----------------------------------------------------------------------------------

    def register(self, name: str, obj: T, *, replace: bool = False) -> T:
        """Add ``obj`` under ``name`` and return it (so it works as a decorator helper)."""
        if self._check is not None:
            self._check(obj)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{self.kind} name must be a non-empty string, got {name!r}")
        key = self._normalize(name)
        if key in self._items and not replace:
            raise ConfigError(f"{self.kind} {key!r} is already registered; pass replace=True to "
                              f"replace it")
        self._items[key] = obj
        return obj

    def add(self, obj: T, *, replace: bool = False) -> T:
        """Register ``obj`` under its own ``name`` attribute (strategies, methods)."""
        return self.register(getattr(obj, "name", ""), obj, replace=replace)

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return what it held."""
        obj = self.get(name)
        del self._items[self._normalize(name)]
        return obj

    @contextmanager
    def scoped(self) -> Iterator[Registry[T]]:
        """Whatever is registered inside the ``with`` block is forgotten after it (tests)."""
        self._load_plugins()
        before = dict(self._items)
        try:
            yield self
        finally:
            self._items.clear()
            self._items.update(before)

    @contextmanager
    def override(self, name: str, obj: T) -> Iterator[T]:
        """Register ``obj`` under ``name`` (replacing any holder) inside a ``with`` block only."""
        with self.scoped():
            self.register(name, obj, replace=True)
            yield obj

    # --- reading ----------------------------------------------------------------------------------

    def get(self, name: str, default: Any = _MISSING) -> T:
        """The object registered as ``name``; ``default`` if given and ``name`` is unknown, else an
        :class:`UnknownNameError` listing the known names."""
        self._load_plugins()
        key = self._normalize(name) if isinstance(name, str) else name
        try:
            return self._items[key]
        except (KeyError, TypeError):
            if default is not _MISSING:
                return default
            known = ", ".join(self._items) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def values(self) -> list[T]:
        self._load_plugins()
        return list(self._items.values())

    def names(self) -> list[str]:
        """Registered names in registration order (built-ins first, then plugins)."""
        self._load_plugins()
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        self._load_plugins()
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return isinstance(name, str) and self._normalize(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._items)})"

    # --- plugins ----------------------------------------------------------------------------------

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True  # once, even if a plugin fails: the error says which one
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.entry_point_group or ""):
            try:
                loaded = ep.load()
                obj = loaded() if isinstance(loaded, type) else loaded
            except Exception as exc:
                raise ImcflowError(f"{self.kind} plugin {ep.name!r} ({ep.value}, entry point group "
                                   f"{self.entry_point_group!r}) failed to load: {exc}") from exc
            name = getattr(obj, "name", None) or ep.name
            self.register(name, obj)
