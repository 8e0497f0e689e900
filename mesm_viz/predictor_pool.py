"""The studio's loaded models: an LRU of :class:`~mesm_core.inference.Predictor` sharing one face detector.

Also what makes a first upload fast: :meth:`PredictorPool.warm_up` loads the default checkpoint, builds
MTCNN and runs the audio path once (librosa's mel and resampler compile on first use: seconds otherwise),
and :class:`StudioFaceDetector` looks for faces on frames shrunk so that the smallest face it looks for is
MTCNN's 20 px (see ``min_face_share``), instead of on frames up to 1280 px.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Sequence

import numpy as np

from mesm_core.data.faces import FaceDetector
from mesm_core.inference import Prediction, Predictor, PreparedClip, SweepPoint
from mesm_viz.floors import checkpoint_floors

log = logging.getLogger(__name__)

__all__ = ["MIN_FACE_SHARE", "StudioFaceDetector", "PredictorPool"]

# The smallest face the studio looks for, as a share of the frame's shorter side. A speaker's face in a
# talking clip is far larger; 8 % still finds a face in a wide two-shot. 0 disables (the pipeline's own
# setting: frames up to 1280 px, faces from 20 px).
MIN_FACE_SHARE = 0.08


class StudioFaceDetector(FaceDetector):
    """MTCNN on frames shrunk so that a face of ``min_face_share`` × the shorter side is 20 px there.

    MTCNN's cost grows with the pixels of its first pyramid level, which is set by its smallest face
    (``min_face_size``): on a 640×480 frame the pipeline's setting scans for faces from 20 px; a talking
    face is 100 px or more. Boxes and landmarks come back in the full frame's pixels and the 48×48 crops are
    cut from the full frame, as in the data pipeline (:meth:`FaceDetector.detect`).
    """

    def __init__(self, *args, min_face_share: float = MIN_FACE_SHARE, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.min_face_share = float(min_face_share)

    def detection_scale(self, shape: Sequence[int]) -> float:
        scale = super().detection_scale(shape)
        if self.min_face_share > 0:
            smallest = self.min_face_share * min(int(shape[0]), int(shape[1]))
            scale = min(scale, self.min_face_size / max(smallest, 1e-6))
        return min(scale, 1.0)


def _warm_audio(sample_rate: int) -> None:
    """Run the mel spectrogram and the resampler once (librosa compiles them on first use)."""
    from mesm_core.config import DataConfig
    from mesm_core.data.audio import melspectrogram, resample

    config = DataConfig()
    melspectrogram(np.zeros(sample_rate, np.float32), config)
    resample(np.zeros(4410, np.float32), 44100, sample_rate)


class PredictorPool:
    """Up to ``size`` loaded predictors (least recently used dropped first), one face detector for all."""

    def __init__(self, device: str = "cpu", sparse_backend: str | None = "auto", size: int = 2,
                 min_face_share: float = MIN_FACE_SHARE) -> None:
        self.device = device
        self.sparse_backend = sparse_backend
        self.size = size
        self.min_face_share = min_face_share
        self.predictors: OrderedDict[str, Predictor] = OrderedDict()
        self.lock = threading.RLock()
        self._detector: FaceDetector | None = None

    def detector(self, checkpoint: str) -> FaceDetector:
        """The one face detector, made from the first checkpoint's preprocessing settings."""
        if self._detector is None:
            from mesm_core.checkpoint import read_checkpoint_info

            config = read_checkpoint_info(checkpoint).run_config.data
            self._detector = StudioFaceDetector(device=self.device, image_size=config.face_size,
                                                margin=config.face_margin, min_face_share=self.min_face_share)
        return self._detector

    def get(self, checkpoint: str) -> Predictor:
        """The loaded, warmed-up predictor of a checkpoint. Raises CheckpointError for a bad folder."""
        with self.lock:
            if checkpoint in self.predictors:
                self.predictors.move_to_end(checkpoint)
                return self.predictors[checkpoint]
            predictor = Predictor.load(checkpoint, self.device, sparse_backend=self.sparse_backend,
                                       detector=self.detector(checkpoint))
            predictor.warm_up()
            self.predictors[checkpoint] = predictor
            while len(self.predictors) > self.size:
                self.predictors.popitem(last=False)
            return predictor

    def warm_up(self, checkpoint: str) -> None:
        """Load ``checkpoint``, build MTCNN, compile the audio path; never raises (logs instead)."""
        try:
            predictor = self.get(checkpoint)
            _warm_audio(predictor.data_config.sample_rate)
        except Exception as exc:  # noqa: BLE001 — e.g. the bundled checkpoint is missing
            log.warning("warm-up skipped: %s", exc)

    def floors(self, checkpoint: str) -> dict[str, float]:
        """modality → the checkpoint's keep floor (see :func:`mesm_viz.floors.checkpoint_floors`)."""
        return checkpoint_floors(self.get(checkpoint).config)

    def run(self, checkpoint: str, prepared: PreparedClip, top_p: float | None, keep_floor: bool = True) -> Prediction:
        """:meth:`Predictor.run`; ``keep_floor=False`` runs the paper's rule (the keep floors off)."""
        return self.get(checkpoint).run(prepared, top_p, keep_floor=keep_floor)

    def sweep(self, checkpoint: str, prepared: PreparedClip, top_ps: Sequence[float], known: dict,
              keep_floor: bool = True) -> list[SweepPoint]:
        """:meth:`Predictor.sweep` (the one sweep), with the keep floors or with the paper's rule."""
        return self.get(checkpoint).sweep(prepared, top_ps, known=known, keep_floor=keep_floor)
