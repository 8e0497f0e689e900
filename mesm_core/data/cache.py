"""The preprocessed cache: one compressed ``.npz`` per utterance, a JSON-lines manifest, ``cache.json``.

Layout of ``CACHE/``::

    cache.json                      version, dataset, classes, DataConfig, source
    records/<id>.npz                arrays only (load with allow_pickle=False); transcript + meta in ``info``
    manifest.jsonl                  one line per attempt: id, split, labels, n_frames, n_faces, n_chunks,
                                    status ok|failed, error  (sharded runs: manifest.shard-I-of-N.jsonl)
    splits.json                     the split report (listed ids without data, data in no split)

The records and manifests are an :class:`~mesm_core.item_store.ItemStore` (the feature cache uses
the same): file naming, the merge rule of the manifests (all shards; the latest entry per id wins, a
torn line from a killed run is ignored) and atomic, fsynced writes (a record file is complete or
absent). A rerun verifies every finished record by reading it back (a half-written or corrupt file is
redone, never trusted), retries failed utterances and skips the rest.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mesm_core.config import DataConfig, from_dict, to_dict
from mesm_core.data.errors import ClipError, CorruptRecordError, DataSourceError
from mesm_core.data.faces import FaceDetector
from mesm_core.data.scan import ClipJob
from mesm_core.io import atomic_write, to_jsonable
from mesm_core.item_store import ItemStore, manifest_name, write_arrays
from mesm_core.types import ClipRecord

CACHE_VERSION = 1
RECORDS_DIR = "records"
CACHE_INFO = "cache.json"
SPLITS_INFO = "splits.json"
_REQUIRED_ARRAYS = ("faces", "face_boxes", "landmarks", "face_probs", "face_detected", "frame_times", "mel", "info")
_OPTIONAL_ARRAYS = ("labels", "face_cues", "mel_cues")
# DataConfig fields that do not change the records (safe to differ between runs on one cache).
_RUNTIME_FIELDS = ("num_workers",)


# --- records -----------------------------------------------------------------------------------

def record_store(cache_dir: str | Path) -> ItemStore:
    """The records and manifests of a cache."""
    return ItemStore(cache_dir, RECORDS_DIR)


def record_path(cache_dir: str | Path, clip_id: str) -> Path:
    return record_store(cache_dir).path(clip_id)


def save_record(record: ClipRecord, path: str | Path) -> Path:
    """Write ``record`` as a compressed .npz, atomically and fsynced (the item store's write). Arrays only."""
    path = Path(path)
    info = {
        "version": CACHE_VERSION,
        "id": record.id,
        "transcript": record.transcript,
        "frame_size": list(record.frame_size) if record.frame_size else None,
        "source": record.source,
        "meta": record.meta.to_dict(),
    }
    arrays = {
        "faces": np.ascontiguousarray(record.faces, dtype=np.uint8),
        "face_boxes": np.asarray(record.face_boxes, np.float32),
        "landmarks": np.asarray(record.landmarks, np.float32),
        "face_probs": np.asarray(record.face_probs, np.float32),
        "face_detected": np.asarray(record.face_detected, bool),
        "frame_times": np.asarray(record.frame_times, np.float32),
        "mel": np.asarray(record.mel, np.float32),
        "info": np.array(json.dumps(to_jsonable(info), ensure_ascii=False)),
    }
    if record.labels is not None:
        arrays["labels"] = np.asarray(record.labels, np.float32)
    if record.face_cues is not None:
        arrays["face_cues"] = np.asarray(record.face_cues, bool)
    if record.mel_cues is not None:
        arrays["mel_cues"] = np.asarray(record.mel_cues, bool)
    return write_arrays(path, arrays)


def load_record(path: str | Path) -> ClipRecord:
    """Read a cached record (every array is read, so zip CRCs are checked).

    Raises CorruptRecordError naming the file for a missing, truncated or inconsistent record.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in _REQUIRED_ARRAYS if k not in archive.files]
            if missing:
                raise CorruptRecordError(path, f"missing array(s) {missing}")
            arrays = {k: archive[k] for k in archive.files}
    except CorruptRecordError:
        raise
    except FileNotFoundError as exc:
        raise CorruptRecordError(path, "record file does not exist") from exc
    except Exception as exc:  # zipfile.BadZipFile, EOFError, ValueError (pickled object arrays), zlib.error
        raise CorruptRecordError(path, f"unreadable record ({type(exc).__name__}: {exc})") from exc
    try:
        info = json.loads(str(arrays["info"]))
    except (ValueError, TypeError) as exc:
        raise CorruptRecordError(path, f"bad info entry ({exc})") from exc
    n_frames = arrays["faces"].shape[0]
    shapes_ok = (
        arrays["faces"].ndim == 4 and arrays["faces"].dtype == np.uint8 and arrays["faces"].shape[-1] == 3
        and arrays["face_boxes"].shape == (n_frames, 4) and arrays["landmarks"].shape == (n_frames, 5, 2)
        and arrays["face_probs"].shape == (n_frames,) and arrays["face_detected"].shape == (n_frames,)
        and arrays["frame_times"].shape == (n_frames,) and arrays["mel"].ndim == 2
    )
    if not shapes_ok:
        raise CorruptRecordError(path, "inconsistent array shapes")
    frame_size = info.get("frame_size")
    return ClipRecord(
        id=info["id"],
        faces=arrays["faces"],
        face_boxes=arrays["face_boxes"],
        landmarks=arrays["landmarks"],
        face_probs=arrays["face_probs"],
        face_detected=arrays["face_detected"],
        frame_times=arrays["frame_times"],
        mel=arrays["mel"],
        transcript=info.get("transcript", ""),
        labels=arrays.get("labels"),
        face_cues=arrays.get("face_cues"),
        mel_cues=arrays.get("mel_cues"),
        frame_size=tuple(frame_size) if frame_size else None,
        source=info.get("source", ""),
        meta=info.get("meta", {}),
    )


# --- manifest and cache info -------------------------------------------------------------------

def read_manifest(cache_dir: str | Path) -> dict[str, dict]:
    """Merge ``manifest*.jsonl`` → {id: latest entry} (the item store's merge rule)."""
    return record_store(cache_dir).entries()


@dataclass(frozen=True)
class CacheInfo:
    """``cache.json``: what a preprocessed cache holds and how it was made.

    ``data`` is the :class:`DataConfig` the records were made with, as written (a dict: caches made by an
    older version may name fields this one no longer has); ``source`` the dataset source's description.
    """

    dataset: str
    classes: tuple[str, ...]
    data: dict[str, Any]
    source: str
    version: int = CACHE_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "dataset": self.dataset, "classes": list(self.classes), "data": self.data,
                "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = CACHE_INFO) -> "CacheInfo":
        """Raises :class:`DataSourceError` naming ``where`` for a missing or mistyped field."""
        fields = {"dataset": str, "classes": list, "data": dict, "source": str, "version": int}
        wrong = [k for k, kind in fields.items() if not isinstance(data.get(k), kind)]
        if wrong:
            raise DataSourceError(f"{where}: missing or malformed field(s) {wrong} (not a cache.json of mesm_core)")
        return cls(dataset=data["dataset"], classes=tuple(data["classes"]), data=data["data"], source=data["source"],
                   version=data["version"])


def read_cache_info(cache_dir: str | Path) -> CacheInfo:
    """The cache's ``cache.json``. Raises :class:`DataSourceError` naming the file when it is missing or malformed."""
    path = Path(cache_dir) / CACHE_INFO
    if not path.is_file():
        raise DataSourceError(f"{path}: not a preprocessed cache (cache.json missing; run python -m mesm_core.preprocess)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataSourceError(f"{path}: unreadable cache.json ({exc})") from exc
    if not isinstance(data, dict):
        raise DataSourceError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return CacheInfo.from_dict(data, str(path))


def _comparable(config_dict: dict) -> dict:
    return {k: v for k, v in config_dict.items() if k not in _RUNTIME_FIELDS}


def write_cache_info(cache_dir: Path, config: DataConfig, classes: Sequence[str], dataset: str, source: str) -> CacheInfo:
    """Create cache.json, or check that an existing one matches (same classes and preprocessing)."""
    info = CacheInfo(dataset=dataset, classes=tuple(classes), data=to_dict(config), source=source)
    path = cache_dir / CACHE_INFO
    if path.is_file():
        existing = read_cache_info(cache_dir)
        if existing.classes != info.classes:
            raise DataSourceError(f"{path}: the cache holds classes {list(existing.classes)}, this run has "
                                  f"{list(info.classes)}; use another --out folder")
        if _comparable(existing.data) != _comparable(info.data):
            diff = sorted(k for k in _comparable(info.data) if existing.data.get(k) != info.data[k])
            raise DataSourceError(f"{path}: the cache was made with different preprocessing settings ({diff}); "
                                  "use another --out folder or the same --set values")
        return existing
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(info.to_dict(), indent=2))
    return info


# --- running jobs ------------------------------------------------------------------------------

def select_shard(jobs: Sequence[ClipJob], shard: tuple[int, int] | None) -> list[ClipJob]:
    """Jobs sorted by id; shard (i, n) keeps every n-th starting at i (0 ≤ i < n). Deterministic."""
    ordered = sorted(jobs, key=lambda job: job.id)
    if shard is None:
        return ordered
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise ValueError(f"shard {index}/{count}: need 0 <= i < n")
    return ordered[index::count]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → (i, n)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as exc:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from exc
    if not (count >= 1 and 0 <= index < count):
        raise ValueError(f"--shard {text}: need 0 <= i < n")
    return index, count


def _entry(job: ClipJob, status: str, record: ClipRecord | None = None, error: str = "",
           chunk_frames: int = 32, seconds: float = 0.0) -> dict:
    entry = {
        "id": job.id,
        "split": job.split,
        "labels": None if job.labels is None else [float(v) for v in np.asarray(job.labels).reshape(-1)],
        "status": status,
        "error": error,
        "file": record_store(".").relative(job.id),
        "source": job.source,
        "time": time.time(),
        "seconds": round(seconds, 3),
    }
    if record is not None:
        n_mel = record.mel.shape[1]
        entry.update(n_frames=int(record.faces.shape[0]), n_faces=int(np.sum(record.face_detected)),
                     n_chunks=int(-(-n_mel // chunk_frames)), no_face=bool(record.meta.no_face),
                     audio_silent=bool(record.meta.audio_silent))
    return entry


def process_job(job: ClipJob, config: DataConfig, detector: FaceDetector, cache_dir: Path) -> dict:
    """Run one job and write its record → manifest entry. Never raises for a bad clip."""
    started = time.perf_counter()
    path = record_path(cache_dir, job.id)
    try:
        record = job.run(config, detector)
        if record.labels is None and job.labels is not None:
            record.labels = np.asarray(job.labels, np.float32)
        save_record(record, path)
    except ClipError as exc:
        return _entry(job, "failed", error=str(exc), seconds=time.perf_counter() - started)
    except Exception as exc:  # one broken clip never stops the run
        return _entry(job, "failed", error=f"{job.source}: {type(exc).__name__}: {exc}",
                      seconds=time.perf_counter() - started)
    return _entry(job, "ok", record, chunk_frames=config.chunk_frames, seconds=time.perf_counter() - started)


_WORKER: dict[str, Any] = {}


def _init_worker(config_dict: dict, device: str, cache_dir: str) -> None:
    import torch

    torch.set_num_threads(1)  # N processes × 1 thread each; MTCNN is built lazily per process
    config = from_dict(DataConfig, config_dict, "data")
    _WORKER.update(config=config, detector=FaceDetector.from_config(config, device=device),
                   cache_dir=Path(cache_dir))


def _worker_process(job: ClipJob) -> dict:
    return process_job(job, _WORKER["config"], _WORKER["detector"], _WORKER["cache_dir"])


@dataclass
class PreprocessSummary:
    total: int = 0                  # jobs in this shard (after --limit)
    already_done: int = 0           # verified records skipped
    processed: int = 0              # ok this run
    redone_corrupt: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (id, error)
    manifest: str = ""

    def text(self) -> str:
        lines = [f"{self.total} utterance(s): {self.already_done} already done, {self.processed} processed, "
                 f"{len(self.failed)} failed" + (f", {len(self.redone_corrupt)} corrupt record(s) redone"
                                                 if self.redone_corrupt else "")]
        for clip_id, error in self.failed[:20]:
            lines.append(f"  FAILED {clip_id}: {error}")
        if len(self.failed) > 20:
            lines.append(f"  … and {len(self.failed) - 20} more (see {self.manifest})")
        return "\n".join(lines)


def _verified(path: Path, clip_id: str) -> bool:
    try:
        return load_record(path).id == clip_id
    except CorruptRecordError:
        return False


def preprocess_jobs(jobs: Sequence[ClipJob], cache_dir: str | Path, config: DataConfig, classes: Sequence[str], *,
                    dataset: str = "", source: str = "", workers: int = 0, shard: tuple[int, int] | None = None,
                    limit: int | None = None, device: str = "cpu", progress: bool = True,
                    detector: FaceDetector | None = None) -> PreprocessSummary:
    """Preprocess ``jobs`` into ``cache_dir`` (resumable; see the module docstring).

    workers ≥ 2 uses that many processes (each with its own MTCNN and one torch thread).
    """
    from tqdm import tqdm

    cache_dir = Path(cache_dir)
    write_cache_info(cache_dir, config, classes, dataset, source)
    (cache_dir / RECORDS_DIR).mkdir(parents=True, exist_ok=True)
    selected = select_shard(jobs, shard)
    if limit is not None:
        selected = selected[:limit]
    store = record_store(cache_dir)
    summary = PreprocessSummary(total=len(selected), manifest=str(cache_dir / manifest_name(shard)))
    previous = store.entries()
    todo: list[ClipJob] = []
    for job in selected:
        path = record_path(cache_dir, job.id)
        entry = previous.get(job.id)
        if path.is_file():
            if _verified(path, job.id):
                summary.already_done += 1
                if entry is None or entry.get("status") != "ok" or entry.get("split") != job.split:
                    record = load_record(path)
                    store.append(_entry(job, "ok", record, chunk_frames=config.chunk_frames), shard)
                continue
            summary.redone_corrupt.append(job.id)
            path.unlink(missing_ok=True)
        todo.append(job)

    bar = tqdm(total=len(todo), desc=f"preprocess {dataset}".strip(), unit="clip", disable=not progress)

    def consume(entry: dict) -> None:
        store.append(entry, shard)
        if entry["status"] == "ok":
            summary.processed += 1
        else:
            summary.failed.append((entry["id"], entry["error"]))
        bar.update(1)
        bar.set_postfix(failed=len(summary.failed))

    if workers >= 2 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker,
                          initargs=(to_dict(config), device, str(cache_dir))) as pool:
            for entry in pool.imap_unordered(_worker_process, todo, chunksize=1):
                consume(entry)
    else:
        detector = detector or FaceDetector.from_config(config, device=device)
        for job in todo:
            consume(process_job(job, config, detector, cache_dir))
    bar.close()
    return summary


# --- reading the cache -------------------------------------------------------------------------

def cache_entries(cache_dir: str | Path, split: str | None = None, status: str | None = "ok") -> list[dict]:
    """Manifest entries (sorted by id), optionally of one split and one status."""
    entries = read_manifest(cache_dir)
    out = [e for e in entries.values()
           if (split is None or e.get("split") == split) and (status is None or e.get("status") == status)]
    return sorted(out, key=lambda e: e["id"])


def iter_records(cache_dir: str | Path, split: str | None = None) -> Iterable[ClipRecord]:
    for entry in cache_entries(cache_dir, split):
        yield load_record(Path(cache_dir) / entry["file"])


__all__ = ["CACHE_VERSION", "record_store", "record_path", "save_record", "load_record",
           "read_manifest", "CacheInfo", "read_cache_info", "write_cache_info", "select_shard", "parse_shard", "process_job",
           "PreprocessSummary", "preprocess_jobs", "cache_entries", "iter_records"]
