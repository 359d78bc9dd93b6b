"""Argument checks shared by the public API and the command line, so both refuse a value with the same
message: it names the argument, the value received and what is allowed.

Library functions call :func:`check_int`, :func:`check_float`, :func:`check_type`, :func:`check_bits`
and friends on their arguments; the CLI's option parsers are built from the same functions
(:func:`cli_type`), so ``--lr inf`` and ``fit(..., lr=float("inf"))`` fail alike. Every failure is a
:class:`~imcflow.errors.ConfigError` (a ``ValueError``).
"""
from __future__ import annotations

import argparse
import math
import numbers
import os
from collections.abc import Callable
from typing import Any, TypeVar

from imcflow.errors import ConfigError

T = TypeVar("T")

# Every bit-width field of imcflow, one definition: (minimum, maximum). 32-bit weights, inputs and ADCs
# cover every published design and keep the simulator's integer arithmetic exact in float64; a cell
# stores at most 16 bits; outputs (partial sums) may need up to 64.
BIT_LIMITS: dict[str, tuple[int, int]] = {
    "weight_bits": (1, 32), "cell_bits": (1, 16), "input_bits": (1, 32), "adc_bits": (1, 32),
    "dac_bits": (1, 32), "output_bits": (1, 64),
}
# Largest value of a layer's integer fields (sizes, channels, kernel, stride, padding, groups): a signed
# 32-bit integer, as torch and ONNX store them. It keeps every product the mapper forms in 64 bits.
MAX_LAYER_FIELD = (1 << 31) - 1


def _where(where: str) -> str:
    return f"{where}: " if where else ""


def check_int(field: str, value: object, minimum: int | None = 1, maximum: int | None = None,
              where: str = "") -> int:
    """Validate an integer argument and return it as a plain Python ``int`` (numpy integers are
    converted, so products never overflow; booleans and floats are refused).

    >>> check_int("rows", 512)
    512
    >>> check_int("rows", 0)
    Traceback (most recent call last):
    ...
    imcflow.errors.ConfigError: rows must be >= 1, got 0
    """
    if type(value) is not int:  # the common case skips the (slow) abstract-class checks
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{_where(where)}{field} must be an integer, got {value!r}")
        value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            allowed = f">= {minimum}"
        elif minimum is None:
            allowed = f"<= {maximum}"
        else:
            allowed = f"in [{minimum}, {maximum}]"
        raise ConfigError(f"{_where(where)}{field} must be {allowed}, got {value}")
    return value


def check_float(field: str, value: object, minimum: float | None = None, maximum: float | None = None,
                *, finite: bool = True, min_inclusive: bool = True, where: str = "") -> float:
    """Validate a real-number argument (ints accepted) and return it as a ``float``; inf and nan are
    refused unless ``finite=False``.

    >>> check_float("lr", 0.1, minimum=0, min_inclusive=False)
    0.1
    >>> check_float("sigma", float("inf"))
    Traceback (most recent call last):
    ...
    imcflow.errors.ConfigError: sigma must be a finite number, got inf
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{_where(where)}{field} must be a number, got {value!r}")
    x = float(value)
    if finite and not math.isfinite(x):
        raise ConfigError(f"{_where(where)}{field} must be a finite number, got {x!r}")
    low_bad = minimum is not None and (x < minimum if min_inclusive else x <= minimum)
    if low_bad or (maximum is not None and x > maximum):
        lo = "" if minimum is None else f"{'>=' if min_inclusive else '>'} {minimum:g}"
        hi = "" if maximum is None else f"<= {maximum:g}"
        raise ConfigError(f"{_where(where)}{field} must be {' and '.join(p for p in (lo, hi) if p)}, "
                          f"got {x!r}")
    return x


def check_type(field: str, value: object, expected: type | tuple[type, ...], where: str = "",
               hint: str = "") -> Any:
    """Refuse ``value`` unless it is an instance of ``expected``; ``hint`` says how to get one.

    >>> check_type("array", "64x64", int, hint="build one with parse_array('64x64')")
    Traceback (most recent call last):
    ...
    imcflow.errors.ConfigError: array must be int, got str '64x64'; build one with parse_array('64x64')
    """
    if not isinstance(value, expected):
        names = (expected,) if isinstance(expected, type) else expected
        allowed = " or ".join(t.__name__ for t in names)
        raise ConfigError(f"{_where(where)}{field} must be {allowed}, got {type(value).__name__} "
                          f"{value!r}" + (f"; {hint}" if hint else ""))
    return value


def check_choice(field: str, value: object, allowed: tuple[str, ...] | list[str], where: str = "") -> str:
    """Refuse ``value`` unless it is one of the ``allowed`` strings."""
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{_where(where)}{field} must be one of {', '.join(map(str, allowed))}, "
                          f"got {value!r}")
    return value


def check_bits(field: str, value: object, kind: str | None = None, where: str = "") -> int:
    """A bit width, bounded by :data:`BIT_LIMITS` (``kind`` defaults to ``field``).

    >>> check_bits("adc.bits", 64, "adc_bits")
    Traceback (most recent call last):
    ...
    imcflow.errors.ConfigError: adc.bits must be in [1, 32], got 64
    """
    lo, hi = BIT_LIMITS[kind or field]
    return check_int(field, value, lo, hi, where=where)


def check_file(field: str, value: object, where: str = "") -> str:
    """An existing readable file path (``str`` or ``os.PathLike``), returned as ``str``."""
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{_where(where)}{field} must be a file path, got {type(value).__name__} "
                          f"{value!r}")
    path = os.fspath(value)
    if not os.path.exists(path):
        raise ConfigError(f"{_where(where)}{field}: file not found: {path}")
    if os.path.isdir(path):
        raise ConfigError(f"{_where(where)}{field}: {path} is a directory, not a file")
    return str(path)


def finite_float(text: str) -> float:
    """Parse a command-line number; inf and nan are refused (the argparse ``type`` of every float
    option, see :func:`cli_type`)."""
    try:
        x = float(text)
    except ValueError:
        raise ConfigError(f"must be a number, got {text!r}") from None
    if not math.isfinite(x):
        raise ConfigError(f"must be a finite number, got {text!r}")
    return x


def cli_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse ``type`` from a parser that raises :class:`ConfigError`: argparse then prints our
    message ("argument --lr: must be a finite number, got 'inf'") instead of its generic one."""
    def parse_option(text: str) -> T:
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse_option.__name__ = getattr(parse, "__name__", "value")
    return parse_option


FINITE_FLOAT = cli_type(finite_float)


def require_finite_floats(parser: argparse.ArgumentParser) -> None:
    """Give every ``type=float`` option of ``parser`` and its subcommands the finite-number check:
    one place, so no float option (today's or a future one) accepts inf or nan."""
    for action in parser._actions:  # argparse has no public walk over its actions
        if action.type is float:
            action.type = FINITE_FLOAT
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                require_finite_floats(sub)
