"""Writing files safely: the one atomic-write helper, standard JSON, and output-path checks.

Every file imcflow writes (CLI outputs, plots, trace files, checkpoints, run state and reports) goes
through :func:`atomic_writer`: the bytes go to a temporary file in the target's folder, are flushed and
fsync'ed, and the file is then renamed over the target with :func:`os.replace`. A process killed at
any moment leaves either the old file or the new one, never half of one.

Output paths are checked *before* any work starts (:func:`check_output_file`,
:func:`check_output_dir`): a missing parent folder, a directory where a file is wanted, a file where a
folder is wanted, a folder that cannot be written (probed by creating a file in it, which also catches
read-only file systems that ``os.access`` misses when running as root), and an output that is one of
the command's inputs are all refused with one line naming the option, the path and the reason.

JSON is standard (RFC 8259): non-finite floats (NaN, inf), which ``json.dumps`` would write as the
non-standard tokens ``NaN``/``Infinity``, are written as ``null``.

>>> dumps_json({"a": float("nan"), "b": [1.5, float("inf")]}, indent=None)
'{"a": null, "b": [1.5, null]}'
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from imcflow.errors import ConfigError, OutputPathError, RunFolderError

PathLike = str | os.PathLike


# ------------------------------------------------------------------------------------------ writing

@contextlib.contextmanager
def atomic_writer(path: PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` for writing; on success fsync it and rename it over
    ``path``; on an exception remove it and leave ``path`` untouched. ``mode`` is ``"wb"`` or ``"w"``
    (UTF-8 text, line endings written as given: NeuroSim's CRLF files stay CRLF)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer mode must be 'wb' or 'w', got {mode!r}")
    # Through a symlink: replace the file it points to, not the link. A device or pipe
    # (/dev/stdout, a FIFO) cannot be replaced by a rename: write to it directly.
    try:
        special = not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # does not exist yet
        special = False
    if special:
        with open(path, mode, encoding="utf-8" if mode == "w" else None,
                  newline="" if mode == "w" else None) as direct:
            yield direct
        return
    target = Path(os.path.realpath(path))
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _file_mode(target))  # mkstemp makes 0600; keep what a plain open() would give
        with os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None,
                       newline="" if mode == "w" else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def _file_mode(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(folder: Path) -> None:
    # The rename itself is durable only once the folder is synced (POSIX; not possible on Windows).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_writer(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_writer(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_files(path: PathLike, write: Callable[[Path], Any]) -> list[Path]:
    """For writers that produce several files from one name (ONNX with external weights writes
    ``NAME`` and ``NAME.data``): ``write(tmp_path)`` runs on a path of the same name inside a hidden
    temporary folder next to ``path``; each file it produced is fsync'ed and renamed into ``path``'s
    folder, the main file last. Returns the final paths."""
    target = Path(path)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmpdir:
        tmp = Path(tmpdir) / target.name
        write(tmp)
        produced = sorted(Path(tmpdir).iterdir(), key=lambda f: (f.name == target.name, f.name))
        finals = []
        for f in produced:
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(f, _file_mode(target.parent / f.name))
            os.replace(f, target.parent / f.name)
            finals.append(target.parent / f.name)
    _fsync_dir(target.parent)
    return finals


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (recursively through dicts, lists and
    tuples; tuples become lists, as JSON has no tuples)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def dumps_json(obj: Any, indent: int | None = 2, default: Callable[[Any], Any] | None = None) -> str:
    """Standard JSON text of ``obj``: non-finite floats become ``null`` (see the module docstring)."""
    if default is not None:
        # Objects the default hook turns into floats must be cleaned too: round-trip through it first.
        obj = json.loads(json.dumps(obj, default=default, allow_nan=True))
    return json.dumps(finite_json(obj), indent=indent, allow_nan=False)


def atomic_write_json(path: PathLike, obj: Any, default: Callable[[Any], Any] | None = None) -> Path:
    """Write ``obj`` as standard JSON (indent 2, final newline) to ``path`` atomically."""
    return atomic_write_text(path, dumps_json(obj, default=default) + "\n")


# ------------------------------------------------------------------------------------ path checking

def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _probe_writable(folder: Path, option: str, path: PathLike) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputPathError(f"{option} {path}: cannot write in folder {folder} "
                              f"({reason.lower()})") from None


def check_output_file(path: PathLike, option: str = "--out", inputs: Iterable[PathLike | None] = ()) -> Path:
    """Check that ``path`` can be written as a file before any work starts; returns it as a Path.

    Refused: an existing directory, a missing parent folder, a parent that is a file, a folder that
    cannot be written, and a path that is one of ``inputs`` (the command's own input files). An
    existing regular file is fine: naming it as the output asks for it to be replaced.
    """
    p = Path(path)
    if str(path) == "":
        raise OutputPathError(f"{option}: the path is empty")
    if p.is_dir():
        raise OutputPathError(f"{option} {path}: is a directory, a file is needed")
    for source in inputs:
        if source is not None and (_same_file(p, Path(source))
                                   or os.path.abspath(p) == os.path.abspath(source)):
            raise OutputPathError(f"{option} {path}: is also an input of this command; "
                                  f"writing it would destroy the input (choose another file)")
    parent = p.parent
    if not parent.exists():
        raise OutputPathError(f"{option} {path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputPathError(f"{option} {path}: {parent} is a file, not a folder")
    _probe_writable(parent, option, path)
    return p


def check_output_dir(path: PathLike, option: str = "--out") -> Path:
    """Check that ``path`` is, or can be created as, a writable folder; returns it as a Path (not
    created). Missing parent folders are fine (they are created on writing); an existing file at
    ``path`` or at any ancestor, or an unwritable nearest existing ancestor, is refused."""
    p = Path(path)
    if str(path) == "":
        raise OutputPathError(f"{option}: the path is empty")
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{option} {path}: is a file, a folder is needed")
    existing = p
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise OutputPathError(f"{option} {path}: {existing} is a file, not a folder")
    _probe_writable(existing if existing.exists() else Path("."), option, path)
    return p


def make_output_dir(path: PathLike, option: str = "--out") -> Path:
    """:func:`check_output_dir`, then create the folder (and its parents)."""
    p = check_output_dir(path, option)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"{option} {path}: cannot create the folder ({exc.strerror or exc})") from None
    return p


# ------------------------------------------------------------------------------------------ run folders

def short_digest(obj: Any, length: int = 8) -> str:
    """A short, stable hex digest of a JSON-able configuration (for default run-folder names).

    >>> short_digest({"a": 1, "b": [2, 3]}) == short_digest({"b": [2, 3], "a": 1})
    True
    """
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def claim_run_dir(path: PathLike, run_files: Iterable[str], resume: bool = False, overwrite: bool = False,
                  option: str = "--out") -> Path:
    """Make ``path`` the folder of a run, refusing to clobber another one; returns it (created).

    ``run_files`` are the names (glob patterns) a run writes there. If any exists the folder holds a
    run: it is refused unless ``resume`` (the caller then checks that the run is the same one) or
    ``overwrite`` (those files and folders, and only those, are deleted first). Other files in the
    folder are never touched.
    """
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other (--resume, --overwrite)")
    p = check_output_dir(path, option)
    present = sorted({q for pattern in run_files for q in p.glob(pattern)}) if p.is_dir() else []
    if present and not resume and not overwrite:
        names = ", ".join(q.name for q in present[:4]) + (", ..." if len(present) > 4 else "")
        raise RunFolderError(f"{option} {path} already holds a run ({names}); continue it with --resume "
                             f"(same settings) or replace it with --overwrite")
    if overwrite:
        for q in present:
            if q.is_dir() and not q.is_symlink():
                shutil.rmtree(q)
            else:
                q.unlink()
    return make_output_dir(p, option)
