"""What inference hands back: a prepared clip, a prediction at one top-p, and a point of a top-p sweep."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mesm_core.inference.text import TextCoverage
from mesm_core.types import Batch, ClipRecord, FlopsReport

__all__ = ["PreparedClip", "LayerTrace", "Prediction", "SweepPoint", "face_view_note"]


@dataclass
class PreparedClip:
    """Everything about one clip that does not depend on top-p (a batch of one utterance).

    record    the preprocessing result (crops, boxes, landmarks, frame times, mel)
    batch     the model input built from ``record`` (tensors on the model's device)
    text_cls  (1, D_text) text CLS vector of ``transcript`` (None for a model without text encoder)
    dense     modality → dense low-level features: "visual" (F, C, H, W), "audio" (N_c, C, H, W)
    text_coverage  how many of the transcript's tokens the model reads (None: the tokenizer cannot say)
    cue_file  the ground-truth cue file attached to ``record`` (None: none given, or it did not fit)
    cue_error why a cue file given was not attached ("" when it was, or none was given)
    """

    record: ClipRecord
    batch: Batch
    text_cls: torch.Tensor | None
    dense: dict[str, torch.Tensor]
    transcript: str
    checkpoint: str
    video_sha1: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    text_coverage: TextCoverage | None = None
    cue_file: str | None = None
    cue_error: str = ""


@dataclass
class LayerTrace:
    """One sparse block of one modality, as numpy (see ``mesm_core.types.SparseBlockTrace``).

    attention float32 (N, H, W), kept bool (N, H, W), active_in bool (N, H, W), grid (H, W),
    floor_decided bool (N,): frames/chunks whose mask a keep floor set rather than the nucleus.
    """

    attention: np.ndarray
    kept: np.ndarray
    active_in: np.ndarray
    grid: tuple[int, int]
    floor_decided: np.ndarray | None = None

    @property
    def floor_share(self) -> float:
        """The share of frames/chunks whose mask a keep floor set (0 without a floor)."""
        if self.floor_decided is None or not self.floor_decided.size:
            return 0.0
        return float(self.floor_decided.mean())

    @property
    def kept_fraction(self) -> float:
        """Kept cells / all grid cells (1.0 = dense)."""
        return float(self.kept.mean()) if self.kept.size else 0.0


def face_view_note(record: ClipRecord) -> str | None:
    """Why the face view is empty or partial (None when every sampled frame has a detected face)."""
    n_frames = int(record.faces.shape[0])
    detected = int(np.asarray(record.face_detected).sum()) if n_frames else 0
    if n_frames == 0:
        return ("No face frames: no sampled frame had a face and the no-face policy is 'skip', so the "
                "visual branch sees only its CLS token; the face view is empty.")
    if detected == 0:
        return (f"No face detected in any of the {n_frames} sampled frames: the visual branch used centre "
                "crops of the frames (no-face policy 'center'), so the face view shows no face and the "
                "FACS regions are drawn on the template face.")
    if detected < n_frames:
        return f"Face detected in {detected} of {n_frames} sampled frames; the others are centre crops."
    return None


@dataclass
class Prediction:
    """One clip at one top-p: probabilities, decisions, attention trace, FLOPs, and the inputs."""

    classes: tuple[str, ...]
    probabilities: dict[str, float]         # sigmoid of the fused logits
    logits: dict[str, float]
    thresholds: dict[str, float]
    threshold_source: str                   # "checkpoint" or an explanation of the 0.5 fallback
    predicted: list[str]                    # classes with probability > threshold (metrics.above_threshold)
    modality_logits: dict[str, dict[str, float]]
    fusion_weights: dict[str, float]        # modality → learned fusion scalar
    trace: dict[str, list[LayerTrace]]      # modality → sparse blocks (empty for FE2E)
    flops: FlopsReport
    kept_fraction: dict[str, list[float]]   # modality → per sparse block
    top_p: float | None                     # None for FE2E (no sparsity)
    record: ClipRecord
    arch: str
    checkpoint: str
    transcript: str
    chunk_frames: int = 32                  # mel frames per audio chunk (maps the audio trace onto the mel)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    text_coverage: TextCoverage | None = None  # tokens read of the transcript, words dropped by the limit

    @property
    def face_note(self) -> str | None:
        return face_view_note(self.record)

    @property
    def flops_ratio(self) -> float:
        """Actual / dense feature-extraction FLOPs (1.0 for a dense model)."""
        return float(self.flops.actual / self.flops.dense) if self.flops.dense else 1.0


@dataclass(frozen=True)
class SweepPoint:
    """One top-p of a sweep over a prepared clip: what it costs and what it decides.

    ``prediction`` is the full result at that p (trace included), so a caller that shows it later
    (the studio's slider) need not run it again.
    """

    top_p: float
    flops_dense: float
    flops_actual: float
    kept_fraction: dict[str, list[float]]   # modality → per sparse block
    probabilities: dict[str, float]
    prediction: Prediction = field(repr=False, compare=False)

    @classmethod
    def of(cls, prediction: Prediction) -> "SweepPoint":
        if prediction.top_p is None:
            raise ValueError("a dense (FE2E) prediction has no top-p to sweep")
        return cls(top_p=float(prediction.top_p), flops_dense=float(prediction.flops.dense),
                   flops_actual=float(prediction.flops.actual), kept_fraction=prediction.kept_fraction,
                   probabilities=prediction.probabilities, prediction=prediction)

    @property
    def flops_ratio(self) -> float:
        return self.flops_actual / self.flops_dense if self.flops_dense else 1.0

    @property
    def mean_kept(self) -> float:
        """Kept fraction averaged over every sparse block of every modality (1.0 when there are none)."""
        values = [k for blocks in self.kept_fraction.values() for k in blocks]
        return float(np.mean(values)) if values else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"top_p": self.top_p, "flops_dense": self.flops_dense, "flops_actual": self.flops_actual,
                "kept_fraction": self.kept_fraction, "probabilities": self.probabilities}
