"""Typed configuration of the two-phase baselines (LF-LSTM, LF-TRANS, EmoEmbs, MulT).

The baselines read pre-extracted per-step feature vectors, so their only input geometry is the
feature size per modality (``feature_sizes``, text/audio/visual), which is taken from the feature
cache when a model is built for one (see ``mesm_core.features``). Defaults fit the offline features
of this project (GloVe-6B-50d text, 84-d acoustic, 35-d AU proxy); the reference used 300/144/35.

Reference quirks are behind flags (all off by default; docs/baselines.md describes each one):

* ``faithful_padding``   LF-LSTM/EmoEmbs: no sequence packing; the text vector is the BiLSTM output at
                         the last *padded* step and audio/visual ``h_n`` run over the padding.
* ``mask_text=False``    LF-TRANS: the text encoder attends to the padding (no key-padding mask).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mesm_core.config import IEMOCAP_CLASSES, MODALITIES

BASELINE_ARCHS = ("lf_lstm", "lf_trans", "emoembs", "mult")

# EmoEmbs label words for the project's class sets (the reference records none for MESM's six
# IEMOCAP classes; these are the words recommended in the research note, all present in GloVe 6B).
LABEL_WORDS = {
    "ang": "angry",
    "exc": "excited",
    "fru": "frustrated",
    "hap": "happy",
    "neu": "neutral",
    "sad": "sad",
    "anger": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "surprise": "surprise",
}


@dataclass
class BaselineModelConfig:
    """Architecture of one two-phase baseline."""

    arch: Literal["lf_lstm", "lf_trans", "emoembs", "mult"] = "lf_lstm"
    classes: tuple[str, ...] = IEMOCAP_CLASSES
    modalities: tuple[str, ...] = MODALITIES
    # Per-step feature size of text, audio, visual (in MODALITIES order).
    feature_sizes: tuple[int, int, int] = (50, 84, 35)

    # LF-LSTM / EmoEmbs: reproduce the reference's unpacked padding (see module docstring).
    faithful_padding: bool = False

    # LF-TRANS: d_model = feature size, learned CLS, no positional encoding, post-LN.
    trans_layers: int = 2
    trans_heads: tuple[int, int, int] = (5, 4, 5)  # text/audio/visual; must divide feature_sizes
    trans_ff: int = 2048
    trans_dropout: float = 0.1
    mask_text: bool = True  # False = the reference (text pads are attended to)

    # EmoEmbs: 2-layer BiLSTMs (directions summed), label-word embeddings scored by dot product.
    label_words: tuple[str, ...] = ()  # empty: LABEL_WORDS[c] for each class
    emo_hidden: tuple[int, int, int] = (50, 200, 100)  # text hidden must equal the word-vector size
    emo_layers: int = 2
    emo_dropout: float = 0.15

    # MulT (EmoEmbs-repo IEMOCAP configuration): crossmodal + memory transformers.
    mult_dim: int = 40
    mult_layers: int = 4
    mult_heads: int = 10
    mult_kernels: tuple[int, int, int] = (3, 5, 3)  # text/audio/visual Conv1d kernels (padding 0)
    mult_embed_dropout: float = 0.3  # on the text input features and on every transformer's input
    mult_attn_dropout: tuple[float, float, float] = (0.25, 0.0, 0.0)  # text/audio/visual targets
    mult_relu_dropout: float = 0.1
    mult_res_dropout: float = 0.1
    mult_out_dropout: float = 0.1

    def resolved_label_words(self) -> tuple[str, ...]:
        """The EmoEmbs label word of each class (``label_words`` or the LABEL_WORDS default)."""
        if self.label_words:
            if len(self.label_words) != len(self.classes):
                raise ValueError(
                    f"{len(self.label_words)} label words for {len(self.classes)} classes: {self.label_words}"
                )
            return tuple(self.label_words)
        missing = [c for c in self.classes if c not in LABEL_WORDS]
        if missing:
            raise ValueError(f"no default label word for class(es) {missing}; set label_words")
        return tuple(LABEL_WORDS[c] for c in self.classes)

    def feature_size(self, modality: str) -> int:
        return int(self.feature_sizes[MODALITIES.index(modality)])


def check_modalities(config: BaselineModelConfig) -> None:
    if config.arch not in BASELINE_ARCHS:
        raise ValueError(f"unknown baseline arch {config.arch!r}; valid: {', '.join(BASELINE_ARCHS)}")
    bad = [m for m in config.modalities if m not in MODALITIES]
    if bad or not config.modalities:
        raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {config.modalities}")
    if len(config.feature_sizes) != 3 or min(config.feature_sizes) < 1:
        raise ValueError(f"feature_sizes must be three positive ints (text, audio, visual), got {config.feature_sizes}")

