"""The data pipeline: clips → ClipRecords → a resumable cache → Batches.

    from mesm_core.data import preprocess_clip, FaceDetector, collate, make_loader
    record = preprocess_clip("clip.mp4", "what was said")          # one clip (train, predict, app)
    loader = make_loader("cache/iemocap", "train", tokenizer, batch_size=8, shuffle=True)

Dataset sources (raw and processed IEMOCAP / CMU-MOSEI, a labelled folder, the synthetic set)
yield :class:`ClipJob` s; ``python -m mesm_core.preprocess`` runs them into a cache. See docs/data.md.
"""

from mesm_core.data.audio import Waveform, load_audio, mel_chunks, melspectrogram
from mesm_core.data.cache import (
    PreprocessSummary,
    cache_entries,
    load_record,
    preprocess_jobs,
    read_cache_info,
    read_manifest,
    record_path,
    save_record,
)
from mesm_core.data.clip import Crop, Requirements, Window, preprocess_clip, preprocess_frames
from mesm_core.data.dataset import CacheDataset, collate, make_loader
from mesm_core.data.errors import (
    ClipError,
    ClipTooLongError,
    CorruptRecordError,
    DataSourceError,
    EmptyClipError,
    EmptyTranscriptError,
    FileTooLargeError,
    NoAudioStreamError,
    NoFaceError,
    NoVideoStreamError,
    SilentAudioError,
    UnreadableMediaError,
    UnsafePickleError,
)
from mesm_core.data.faces import FaceDetector, crop_box, crop_region, points_to_crop
from mesm_core.data.folder import folder_source
from mesm_core.data.iemocap import iemocap_processed_source, iemocap_raw_source, speaker_side
from mesm_core.data.mosei import mosei_processed_source, mosei_raw_source, parse_mosei_id
from mesm_core.data.safe_pickle import load_safe_pickle
from mesm_core.data.scan import ClipJob, SourceScan
from mesm_core.data.sources import SOURCE_NAMES, build_source
from mesm_core.data.splits import SplitReport, assign_splits, generate_iemocap_split, load_split_lists
from mesm_core.data.synthetic.source import synthetic_source
from mesm_core.data.transcript import Transcript, resolve_transcript
from mesm_core.data.video import sample_times

__all__ = [
    "preprocess_clip", "preprocess_frames", "Window", "Crop", "Requirements", "sample_times", "ClipJob",
    "Transcript", "resolve_transcript", "mel_chunks", "melspectrogram", "load_audio",
    "Waveform", "FaceDetector", "crop_box", "crop_region", "points_to_crop",
    "ClipError", "UnreadableMediaError", "NoVideoStreamError", "NoAudioStreamError", "EmptyClipError",
    "ClipTooLongError", "FileTooLargeError", "EmptyTranscriptError", "SilentAudioError", "NoFaceError",
    "DataSourceError", "CorruptRecordError", "UnsafePickleError",
    "CacheDataset", "collate", "make_loader",
    "load_split_lists", "generate_iemocap_split", "assign_splits", "SplitReport",
    "SourceScan", "SOURCE_NAMES", "build_source", "iemocap_raw_source", "iemocap_processed_source",
    "mosei_raw_source", "mosei_processed_source", "folder_source", "synthetic_source", "speaker_side",
    "parse_mosei_id", "load_safe_pickle",
    "preprocess_jobs", "PreprocessSummary", "load_record", "save_record", "record_path", "read_manifest",
    "read_cache_info", "cache_entries",
]
