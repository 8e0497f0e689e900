"""Data types shared by the data pipeline, the models, training, predict and the app.

Shapes use: B utterances in a batch, N_f face frames and N_c mel chunks summed over the batch
(utterances are concatenated, with per-utterance lengths), C classes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from mesm_core.config import MODALITIES


@dataclass
class ClipMeta:
    """What preprocessing recorded about a clip besides its arrays (``ClipRecord.meta``).

    The typed fields are the ones other modules read; everything else the pipeline or a dataset
    source records (frame and face counts, flags, dataset ids...) is kept in ``extra``. The cache
    stores all of it as one flat JSON object, the format older caches already have, so
    :meth:`from_dict` reads both. Item access (``meta["n_faces"]``) reads typed fields and extras alike.
    """

    duration_s: float | None = None            # length of the utterance window (s)
    start_s: float = 0.0                       # window start in the source, from its first sample (s)
    end_s: float | None = None
    media_origin_s: float = 0.0                # time of the container's first sample (MPEG-TS, some MP4s)
    audio_path: str | None = None              # file the audio was read from
    audio_channel: int | None = None           # the channel kept; None = mean of all channels
    audio_duration_s: float | None = None
    audio_silent: bool = False                 # every sample is zero: the audio carries nothing
    no_face: bool = False                      # no sampled frame had a detected face
    face_regions: list[list[float]] | None = None  # (F, 4) frame-pixel region resized into each face crop
    split: str | None = None                   # train / valid / test / ... when it came from a dataset
    cue_modalities: dict[str, bool] | None = None  # synthetic data: which modalities carry the cue
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")

    @classmethod
    def from_dict(cls, data: "Mapping[str, Any] | ClipMeta | None") -> "ClipMeta":
        """From the flat dict of a cache file (or a ClipMeta, copied); unknown keys go to ``extra``."""
        if isinstance(data, ClipMeta):
            return dataclasses.replace(data, extra=dict(data.extra))
        data = dict(data or {})
        typed = {k: data.pop(k) for k in cls.fields() if k in data}
        return cls(**typed, extra=data)

    def to_dict(self) -> dict[str, Any]:
        """One flat dict: the typed fields, then the extras (what the cache stores)."""
        return {**{k: getattr(self, k) for k in self.fields()}, **self.extra}

    def copy(self) -> "ClipMeta":
        return ClipMeta.from_dict(self)

    # Item access, for the free-form extras and for code written against the older dict.
    def __getitem__(self, key: str) -> Any:
        if key in self.fields():
            return getattr(self, key)
        return self.extra[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self.fields():
            setattr(self, key, value)
        else:
            self.extra[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self.fields() or key in self.extra

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def keys(self):
        return self.to_dict().keys()

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def update(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            self[key] = value


@dataclass
class ClipRecord:
    """One utterance after preprocessing (what the cache stores and ``preprocess_clip`` returns).

    Arrays (F = sampled frames, T = mel frames):
      faces          uint8   (F, S, S, 3)  RGB face crops (S = face_size, 48)
      face_boxes     float32 (F, 4)        MTCNN box x1,y1,x2,y2 in frame pixels (NaN when no face)
      landmarks      float32 (F, 5, 2)     MTCNN points in *crop* pixels: eye_l, eye_r, nose, mouth_l, mouth_r
                                           (image-left first; NaN when no face)
      face_probs     float32 (F,)          detection probability (0 when no face)
      face_detected  bool    (F,)          False where the no-face policy filled the crop
      frame_times    float32 (F,)          seconds from utterance start
      mel            float32 (n_mels, T)   power mel spectrogram (not chunked, not log)
      face_cues      bool    (F, S, S)     optional ground-truth cue mask (synthetic data only)
      mel_cues       bool    (n_mels, T)   optional ground-truth cue mask (synthetic data only)
    """

    id: str
    faces: np.ndarray
    face_boxes: np.ndarray
    landmarks: np.ndarray
    face_probs: np.ndarray
    face_detected: np.ndarray
    frame_times: np.ndarray
    mel: np.ndarray
    transcript: str
    labels: np.ndarray | None = None
    face_cues: np.ndarray | None = None
    mel_cues: np.ndarray | None = None
    frame_size: tuple[int, int] | None = None  # (H, W) of the source frames
    source: str = ""
    meta: ClipMeta = field(default_factory=ClipMeta)

    def __post_init__(self) -> None:
        if not isinstance(self.meta, ClipMeta):  # a dict: an older cache, or a hand-made record
            self.meta = ClipMeta.from_dict(self.meta)


@dataclass
class Batch:
    """Model input. Build it with ``mesm_core.data.collate`` (or ``mesm_core.dummy_batch``).

    faces          float32 (N_f, 3, S, S)   raw 0..255 RGB (the model normalises)
    face_lengths   long    (B,)             frames per utterance (0 allowed: CLS token only)
    chunks         float32 (N_c, 1, n_mels, chunk_frames) power mel chunks (the model transforms)
    chunk_lengths  long    (B,)
    text           dict of long tensors (B, L): input_ids, attention_mask[, token_type_ids]
    labels         float32 (B, C) multi-hot, or None at inference
    """

    faces: torch.Tensor
    face_lengths: torch.Tensor
    chunks: torch.Tensor
    chunk_lengths: torch.Tensor
    text: dict[str, torch.Tensor]
    labels: torch.Tensor | None = None
    ids: list[str] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        return int(self.face_lengths.shape[0])

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(
            faces=self.faces.to(device),
            face_lengths=self.face_lengths.to(device),
            chunks=self.chunks.to(device),
            chunk_lengths=self.chunk_lengths.to(device),
            text={k: v.to(device) for k, v in self.text.items()},
            labels=None if self.labels is None else self.labels.to(device),
            ids=list(self.ids),
        )


@dataclass
class FeatureBatch:
    """Model input of the baselines: zero-padded per-step feature sequences.

    text           float32 (B, L_t, D_t)   e.g. GloVe vectors, one per word
    text_lengths   long    (B,)            ≥ 1 (an empty transcript is one zero vector)
    audio          float32 (B, L_a, D_a)   one vector per 400 ms window
    audio_lengths  long    (B,)            ≥ 1
    visual         float32 (B, L_v, D_v)   one vector per sampled frame (2 fps)
    visual_lengths long    (B,)            ≥ 1
    visual_face    bool    (B, L_v)        True where a face was found (faceless frames are zeros)
    labels         float32 (B, C) multi-hot, or None at inference
    """

    text: torch.Tensor
    text_lengths: torch.Tensor
    audio: torch.Tensor
    audio_lengths: torch.Tensor
    visual: torch.Tensor
    visual_lengths: torch.Tensor
    visual_face: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    ids: list[str] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        return int(self.text_lengths.shape[0])

    def features(self, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(padded features (B, L, D), lengths (B,)) of ``modality``."""
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}")
        return getattr(self, modality), getattr(self, f"{modality}_lengths")

    def to(self, device: torch.device | str) -> "FeatureBatch":
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return FeatureBatch(
            text=self.text.to(device), text_lengths=self.text_lengths.to(device),
            audio=self.audio.to(device), audio_lengths=self.audio_lengths.to(device),
            visual=self.visual.to(device), visual_lengths=self.visual_lengths.to(device),
            visual_face=move(self.visual_face), labels=move(self.labels), ids=list(self.ids),
        )


@dataclass
class FlopsRow:
    modality: str   # "visual" | "audio"
    name: str       # e.g. "stem", "block1", "attention1", "sparse_block1", "pool1"
    dense: float    # FLOPs (2 × multiply-adds) if computed densely
    actual: float   # FLOPs actually required given the kept cells


@dataclass
class FlopsReport:
    """Feature-extraction FLOPs (face + audio CNNs and the attention layers) for a whole batch."""

    dense: float
    actual: float
    layers: list[FlopsRow] = field(default_factory=list)

    def by_modality(self) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        for row in self.layers:
            d, a = out.get(row.modality, (0.0, 0.0))
            out[row.modality] = (d + row.dense, a + row.actual)
        return out


@dataclass
class SparseBlockTrace:
    """What one MESM sparse block saw, for one modality, over all N frames/chunks of the batch.

    attention  float32 (N, H, W)  softmax over the block's input cells of each frame (0 on inactive cells)
    kept       bool    (N, H, W)  the nucleus mask (cells the sparse convs compute)
    active_in  bool    (N, H, W)  cells that were active before this block's selection
    grid       (H, W)             the block's input grid (visual 24×24/12×12/6×6; audio 64×16/32×8/16×4 at full size)
    active_cells int              kept.sum()
    floor_decided bool (N,)       frames/chunks whose mask the keep floor set (it kept more than the nucleus would)
    """

    attention: torch.Tensor
    kept: torch.Tensor
    active_in: torch.Tensor
    grid: tuple[int, int]
    active_cells: int
    floor_decided: torch.Tensor | None = None


@dataclass
class SelectionState:
    """One sparse block's selection in training, kept with its graph for the selection losses.

    log_probs  float (N, H, W)  attention log-probabilities (-inf on inactive cells), differentiable
    kept       bool  (N, H, W)  the nucleus mask
    active     bool  (N, H, W)  cells active before this block's selection
    gate       float (N, H, W)  the straight-through keep gate (values = kept) on gated steps, else None:
                                ∂L/∂gate is each cell's first-order keep effect (the self-saliency target)
    """

    log_probs: torch.Tensor
    kept: torch.Tensor
    active: torch.Tensor
    gate: torch.Tensor | None = None


@dataclass
class SparseStageOutput:
    """What a model's sparse stage returns for one modality (FE2E: the dense features unchanged).

    features    (N, C', H', W') map handed to the flatten MLP (zero off the active cells for MESM)
    counts      per-block ``mesm_core.flops.SparseBlockCounts`` for the FLOPs report
    traces      per-block :class:`SparseBlockTrace` when ``return_trace=True``, else None
    selections  per-block :class:`SelectionState` in training mode, else empty
    """

    features: torch.Tensor
    counts: list = field(default_factory=list)
    traces: list[SparseBlockTrace] | None = None
    selections: list[SelectionState] = field(default_factory=list)


@dataclass
class ModelOutput:
    logits: torch.Tensor                                     # (B, C)
    modality_logits: dict[str, torch.Tensor]                 # name → (B, C)
    fusion_weights: torch.Tensor                             # (M,) in the order of modality_logits
    flops: FlopsReport
    trace: dict[str, list[SparseBlockTrace]] | None = None   # modality → blocks (MESM, return_trace=True)
    selections: dict[str, list[SelectionState]] = field(default_factory=dict)  # modality → blocks (MESM, training)
