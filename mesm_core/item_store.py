"""The item store under both caches: one compressed ``.npz`` per item and JSON-lines manifests of attempts.

The preprocessed clip cache (``mesm_core.data.cache``: ``records/``) and the feature cache
(``mesm_core.features.cache``: ``items/``) keep their items the same way::

    ROOT/<items>/<name>.npz     arrays only (read with allow_pickle=False); written atomically and fsynced
    ROOT/manifest.jsonl         one JSON object per attempt: {"id", "status", "file", "time", ...}
    ROOT/manifest.shard-I-of-N.jsonl   the same, one per shard of a sharded writer

* **Naming** (:func:`item_filename`): safe characters kept (``-``, ``_``, ``.``, letters, digits), everything
  else %-escaped, so any id maps to one file name and different ids never collide.
* **Merge rule** (:meth:`ItemStore.entries`): the lines of every manifest are merged; per id the entry with
  the latest ``time`` wins (on a tie, the later line), and a line cut short by a killed writer is skipped.
* **Writes** go through ``mesm_core.io.atomic_write``: an item file is complete or absent, and the temporary
  file a killed write left for the same item is removed first.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mesm_core.io import atomic_write, stale_temp_files, to_jsonable

__all__ = ["ItemStore", "item_filename", "manifest_name", "write_arrays", "append_line"]


def item_filename(item_id: str) -> str:
    """The ``.npz`` file name of an id: safe characters kept (MOSEI ids with '-'/'_' stay readable), others %-escaped."""
    name = urllib.parse.quote(item_id, safe="-_.")
    if name.startswith("."):
        name = "%2E" + name[1:]
    return name + ".npz"


def manifest_name(shard: tuple[int, int] | None = None) -> str:
    """``manifest.jsonl``, or ``manifest.shard-III-of-NNN.jsonl`` for shard (i, n) of a sharded writer."""
    if shard is None:
        return "manifest.jsonl"
    index, count = shard
    return f"manifest.shard-{index:03d}-of-{count:03d}.jsonl"


def write_arrays(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """``np.savez_compressed`` of ``arrays`` to ``path``, atomically and fsynced (a cache must survive a crash)."""
    path = Path(path)
    for stale in stale_temp_files(path):
        stale.unlink(missing_ok=True)  # left by a killed write of this same item
    return atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays), fsync=True)


def append_line(path: str | Path, entry: Mapping[str, Any]) -> None:
    """Append one JSON line (flushed) to a manifest."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(to_jsonable(dict(entry)), ensure_ascii=False) + "\n")
        handle.flush()


class ItemStore:
    """The items directory ``root/items_dir`` and the manifests of ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path, items_dir: str) -> None:
        self.root = Path(root)
        self.items_dir = items_dir

    def relative(self, item_id: str) -> str:
        """The item's file relative to the root (what a manifest entry records as ``file``)."""
        return f"{self.items_dir}/{item_filename(item_id)}"

    def path(self, item_id: str) -> Path:
        return self.root / self.relative(item_id)

    def resolve(self, file: str) -> Path:
        """The path of a manifest entry's ``file`` (a bare name is inside the items directory, as older feature
        caches recorded it)."""
        return self.root / file if "/" in file else self.root / self.items_dir / file

    def write(self, item_id: str, arrays: Mapping[str, np.ndarray]) -> str:
        """Store the item's arrays; returns its ``file`` for the manifest."""
        write_arrays(self.path(item_id), arrays)
        return self.relative(item_id)

    def append(self, entry: Mapping[str, Any], shard: tuple[int, int] | None = None) -> dict:
        """Record an attempt (``time`` added when absent) in the manifest (of ``shard``); returns the entry."""
        entry = {**entry, "time": entry.get("time", time.time())}
        self.root.mkdir(parents=True, exist_ok=True)
        append_line(self.root / manifest_name(shard), entry)
        return entry

    def entries(self) -> dict[str, dict]:
        """``{id: its winning entry}`` over every manifest, by the merge rule of the module docstring."""
        entries: dict[str, dict] = {}
        for path in sorted(self.root.glob("manifest*.jsonl")):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a killed run
                if not isinstance(entry, dict) or "id" not in entry:
                    continue
                previous = entries.get(entry["id"])
                if previous is None or entry.get("time", 0) >= previous.get("time", 0):
                    entries[entry["id"]] = entry
        return entries
