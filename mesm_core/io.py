"""Files that are complete or absent, and JSON that always serialises: the one home of both helpers.

* :func:`atomic_write` writes a file through a hidden temporary sibling and renames it over the
  target, so a reader (or a resumed run) sees the old file or the new one, never half of one.
* :func:`atomic_directory` does the same for a whole directory (checkpoints, generated datasets).
* :func:`file_sha1` names a file by its content (the studio's cache key for an upload).
* :func:`to_jsonable` turns numpy scalars and arrays, tensors, paths, tuples and sets into plain JSON
  values and non-finite floats into ``null`` (strict JSON has no NaN); :func:`write_json` combines it
  with an atomic write.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import numpy as np

__all__ = ["atomic_write", "atomic_directory", "stale_temp_files", "file_sha1", "to_jsonable", "write_json"]

_TEMP_SUFFIX = ".tmp"


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Temporary siblings of ``path`` left behind by a killed :func:`atomic_write`."""
    path = Path(path)
    return sorted(path.parent.glob(f"{_temp_prefix(path)}*{_TEMP_SUFFIX}"))


def atomic_write(path: str | os.PathLike, content: bytes | str | Callable[[IO[bytes]], Any], *,
                 fsync: bool = False, encoding: str = "utf-8") -> Path:
    """Write ``path`` so that it is either the old file or the complete new one.

    ``content`` is bytes, text (encoded with ``encoding``) or a function that writes into the open
    binary handle (``np.savez_compressed``, ``PIL.Image.save``...). The parent directory is created.
    ``fsync`` flushes the data to disk before the rename (for caches that must survive a power cut).
    On any error the temporary file is removed and ``path`` is untouched. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=_TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if callable(content):
                content(handle)
            else:
                handle.write(content.encode(encoding) if isinstance(content, str) else content)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        # mkstemp creates the file 0600; give it the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_directory(final: str | os.PathLike, *, old_name: str | None = None) -> Iterator[Path]:
    """Yield a temporary sibling directory; when the block succeeds it replaces ``final``.

    POSIX cannot rename a directory over a non-empty one, so an existing ``final`` is first moved
    aside and removed after the swap. By default it goes into a fresh hidden directory, so nothing of
    the user's is ever in the way. With ``old_name`` it becomes the sibling ``old_name`` instead (a
    previous one is removed first), which a reader that finds no ``final`` in that short window can
    fall back to (``mesm_core.training.state.find_resumable`` does). On an exception the temporary
    directory is removed and ``final`` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; give it the permissions a plain mkdir would
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old_name is not None:
        aside, trash = final.with_name(old_name), None
        if aside.exists():
            shutil.rmtree(aside)
    else:
        trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        aside = trash / final.name
    try:
        if final.exists():
            os.replace(final, aside)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(trash if trash is not None else aside, ignore_errors=True)


def file_sha1(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """SHA-1 hex digest of a file's bytes, read in blocks."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def to_jsonable(value: Any, *, fallback: Callable[[Any], Any] | None = None) -> Any:
    """``value`` as plain JSON types (dict with str keys, list, str, int, float, bool, None).

    numpy scalars/arrays and tensors become Python numbers/lists, paths strings, tuples and sets lists,
    NaN and ±inf ``None``. Anything else raises ``TypeError``, unless ``fallback`` converts it
    (``fallback=str`` for free-form metadata).
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, fallback=fallback) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v, fallback=fallback) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "tolist"):  # numpy, torch
        return to_jsonable(value.tolist(), fallback=fallback)
    if fallback is not None:
        return to_jsonable(fallback(value))
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path: str | os.PathLike, value: Any, *, indent: int | None = 2, **dumps_options: Any) -> Path:
    """``to_jsonable(value)`` as JSON text (with a final newline), written atomically. Returns ``path``."""
    text = json.dumps(to_jsonable(value), indent=indent, **dumps_options)
    return atomic_write(path, text + "\n")
