"""A restricted unpickler for the authors' ``meta.pkl`` files.

A pickle can run arbitrary code when loaded; ``meta.pkl`` should only ever contain plain data
(dicts of str → dicts of str/number/list). :func:`load_safe_pickle` admits the opcodes that build
containers, strings, numbers, bool and None, plus an explicit allow-list of classes (numpy arrays,
dtypes and scalars, ``collections.OrderedDict``). Any other global raises
:class:`~mesm_core.data.errors.UnsafePickleError` naming the file and the class.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from mesm_core.data.errors import UnsafePickleError

# (module, name) pairs a data pickle may reference. numpy moved ``core`` to ``_core`` in 2.0;
# pickles written by either version use one or the other.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "complex"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("_codecs", "encode"),  # numpy scalar pickles under protocol 2 encode raw bytes with it
})


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, where: str):
        super().__init__(file)
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(self._where, f"pickle refers to {module}.{name}, which is not an allowed data type "
                                             "(only containers, str, numbers, bool, None and numpy arrays are read)")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(self._where, "pickle uses persistent ids, which are not allowed")


def loads_safe_pickle(data: bytes, where: str = "<bytes>") -> Any:
    """Unpickle ``data`` with the allow-list. Raises UnsafePickleError / ValueError naming ``where``."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), where).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated or malformed pickle
        raise UnsafePickleError(where, f"not a readable pickle ({type(exc).__name__}: {exc})") from exc


def load_safe_pickle(path: str | Path) -> Any:
    """Read a pickle file that must contain plain data only (see module docstring)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnsafePickleError(path, f"cannot read ({exc})") from exc
    return loads_safe_pickle(data, str(path))


__all__ = ["ALLOWED_GLOBALS", "load_safe_pickle", "loads_safe_pickle"]
