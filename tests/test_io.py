"""mesm_core.io: files are complete or absent, directories swap whole, JSON always serialises."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mesm_core.io import atomic_directory, atomic_write, file_sha1, stale_temp_files, to_jsonable, write_json


@pytest.mark.parametrize("content, expected", [
    (b"\x00bytes", b"\x00bytes"),
    ("text ä", "text ä".encode()),
    (lambda handle: handle.write(b"from a writer"), b"from a writer"),
])
def test_atomic_write_writes_bytes_text_or_a_writer(tmp_path, content, expected):
    path = atomic_write(tmp_path / "sub" / "file.bin", content)
    assert path.read_bytes() == expected
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.bin"]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failing_writer_leaves_the_old_file(tmp_path):
    path = atomic_write(tmp_path / "f.txt", "old")

    def boom(handle):
        handle.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, boom)
    assert path.read_text() == "old" and stale_temp_files(path) == []


def test_stale_temp_files_are_the_hidden_siblings(tmp_path):
    path = tmp_path / "r.npz"
    (tmp_path / ".r.npz.abc123.tmp").write_bytes(b"x")
    (tmp_path / ".other.npz.abc.tmp").write_bytes(b"x")
    assert [p.name for p in stale_temp_files(path)] == [".r.npz.abc123.tmp"]


@pytest.mark.parametrize("old_name", [None, "target.old"])
def test_atomic_directory_swaps_whole_or_not_at_all(tmp_path, old_name):
    target = tmp_path / "target"
    (tmp_path / "target.old-keep").mkdir()  # a folder of the user's beside it is never touched
    with atomic_directory(target, old_name=old_name) as tmp:
        (tmp / "a").write_text("1")
    with atomic_directory(target, old_name=old_name) as tmp:
        (tmp / "a").write_text("2")
    assert (target / "a").read_text() == "2"
    with pytest.raises(ValueError):
        with atomic_directory(target, old_name=old_name) as tmp:
            (tmp / "a").write_text("3")
            raise ValueError("failed half way")
    assert (target / "a").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target", "target.old-keep"]


def test_to_jsonable_converts_what_json_cannot():
    value = {
        "np": np.float32(0.5), "int": np.int64(3), "bool": np.bool_(True), "array": np.arange(3),
        "tensor": torch.tensor([1.0, 2.0]), "scalar_tensor": torch.tensor(4), "path": Path("/a/b"),
        "tuple": (1, (2, 3)), "set": {7}, "nan": float("nan"), "inf": -math.inf, "nested": [np.float64("nan")],
        1: "int key",
    }
    out = to_jsonable(value)
    assert out == {"np": 0.5, "int": 3, "bool": True, "array": [0, 1, 2], "tensor": [1.0, 2.0], "scalar_tensor": 4,
                   "path": "/a/b", "tuple": [1, [2, 3]], "set": [7], "nan": None, "inf": None, "nested": [None],
                   "1": "int key"}
    json.dumps(out, allow_nan=False)  # strict JSON


def test_to_jsonable_refuses_unknown_objects_unless_told_how():
    with pytest.raises(TypeError, match="object"):
        to_jsonable({"x": object()})
    assert to_jsonable({"x": Path}, fallback=str) == {"x": str(Path)}


def test_write_json_is_atomic_and_strict(tmp_path):
    path = write_json(tmp_path / "r.json", {"v": np.float32(float("nan")), "k": [1, 2]}, indent=None)
    assert path.read_text() == '{"v": null, "k": [1, 2]}\n'


def test_file_sha1(tmp_path):
    import hashlib

    path = atomic_write(tmp_path / "f", b"abc" * 1000)
    assert file_sha1(path, block=7) == hashlib.sha1(b"abc" * 1000).hexdigest()
