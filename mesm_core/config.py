"""Typed configuration for models, preprocessing and training: every run-config type of every model family.

Every run resolves one :class:`RunConfig` (preset + overrides) and saves it as JSON beside its
checkpoints, so a checkpoint always says exactly how it was built and trained. Its ``model`` section
is a :class:`ModelConfig` (the end-to-end models, FE2E and MESM) or a :class:`BaselineModelConfig`
(the two-phase baselines), chosen by ``model.arch``; the other sections are shared.

Overrides use dotted paths, e.g. ``apply_overrides(cfg, ["model.top_p=0.5", "train.lr=1e-4"])``.
Every section validates itself (:meth:`ModelConfig.validate` ...): the choices of a ``Literal`` field
are read from its annotation, so they are written down once, here.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from mesm_core.errors import InputError

CONFIG_VERSION = 1

IEMOCAP_CLASSES = ("ang", "exc", "fru", "hap", "neu", "sad")
MOSEI_CLASSES = ("anger", "disgust", "fear", "happy", "sad", "surprise")
MODALITIES = ("text", "audio", "visual")
E2E_ARCHS = ("fe2e", "mesm")
BASELINE_ARCHS = ("lf_lstm", "lf_trans", "emoembs", "mult")
# The per-class metrics of ``mesm_core.metrics``, in the order it computes them (a TrainConfig selects on one).
MetricName = Literal["accuracy", "weighted_accuracy", "precision", "recall", "f1", "auc"]


class ConfigError(InputError, ValueError):
    """A configuration value outside its choices or range; the message names every bad field."""


@functools.cache
def literal_choices(cls: type) -> dict[str, tuple[Any, ...]]:
    """``{field: allowed values}`` of every ``Literal``-annotated field of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: typing.get_args(hints[f.name]) for f in dataclasses.fields(cls)
            if typing.get_origin(hints[f.name]) is Literal}


class _Section:
    """Validation shared by the config sections: Literal choices, plus each section's own range checks."""

    SECTION = ""

    def problems(self) -> list[str]:
        """Every invalid value of this section, as ``section.field must ... (got ...)`` sentences."""
        out = []
        for name, choices in literal_choices(type(self)).items():
            value = getattr(self, name)
            if value not in choices:
                out.append(f"{self.SECTION}.{name} must be one of {', '.join(map(str, choices))} (got {value!r})")
        return out + self._range_problems()

    def _range_problems(self) -> list[str]:
        return []

    def _check(self, ok: bool, name: str, rule: str) -> list[str]:
        return [] if ok else [f"{self.SECTION}.{name} must {rule} (got {getattr(self, name)!r})"]

    def validate(self) -> Any:
        """Raise :class:`ConfigError` naming every invalid field; returns ``self``."""
        problems = self.problems()
        if problems:
            raise ConfigError("; ".join(problems))
        return self


@dataclass
class ModelConfig(_Section):
    """Architecture of FE2E / MESM (docs/models.md)."""

    SECTION = "model"

    arch: Literal["fe2e", "mesm"] = "fe2e"
    classes: tuple[str, ...] = IEMOCAP_CLASSES
    # Input geometry: one 3×face_size×face_size crop per sampled frame, one 1×n_mels×chunk_frames
    # mel chunk per 400 ms of audio.
    face_size: int = 48
    n_mels: int = 128
    chunk_frames: int = 32
    # VGG-style encoder (shared implementation for faces and mel chunks):
    # stem conv5×5 → stem_channels + BN + ReLU + maxpool2, then one VGG block (2× conv3×3+BN+ReLU)
    # per entry of block_channels; blocks listed in pool_after end with a 2×2 max-pool.
    # MESM makes the last `n_sparse_blocks` blocks sparse.
    stem_channels: int = 64
    stem_kernel: int = 5
    block_channels: tuple[int, ...] = (64, 64, 128, 256, 512)
    pool_after: tuple[int, ...] = (2, 3, 4)
    n_sparse_blocks: int = 3
    flatten_hidden: int = 1024
    # Temporal Transformers (one per modality), reference defaults: d=64, 4 layers, 4 heads,
    # FFN 2048, dropout 0.1, learned CLS, no positional encoding.
    trans_dim: int = 64
    trans_layers: int = 4
    trans_heads: int = 4
    trans_ff: int = 2048
    trans_dropout: float = 0.1
    positional_encoding: bool = False
    # Text encoder: a Hugging Face id or local path, "minilm" (the packaged offline MiniLM),
    # or "tiny-random" (a small randomly initialised BERT, for tests).
    text_model: str = "albert-base-v2"
    text_max_len: int = 100
    text_trainable: bool = True
    text_lr_factor: float = 0.1
    # Input normalisation is part of the model so a checkpoint carries it.
    face_mean: tuple[float, float, float] = (159.0, 111.0, 102.0)
    face_std: tuple[float, float, float] = (37.0, 33.0, 32.0)
    audio_transform: Literal["power", "log"] = "power"
    # MESM only.
    top_p: float = 0.7
    sparse_backend: Literal["auto", "gather", "dense", "spconv", "masked"] = "auto"
    # How the attention gets a gradient (see docs/deviations.md, "Models" and "Selection training"):
    # "trained": kept features are scaled by their attention renormalised over the kept cells (× |kept|);
    # "straight_through": the forward pass is the plain masked features (as in the paper, so p = 1 computes
    #   exactly the dense CNN); in training the hard keep mask carries a surrogate gradient to every active
    #   cell, dropped ones included (models/keep_gate.py; trains on the masked backend);
    # "reference": detached selection, weights never applied (the original code's behaviour: no gradient).
    attention_mode: Literal["trained", "straight_through", "reference"] = "straight_through"
    # Reproduce the reference's block-1 coordinate/feature order bug (only with attention_mode="reference").
    reference_block1_bug: bool = False
    # Attention scorer: "cell" (the paper's, per cell) or "context" (3×3 conv + the frame's mean feature).
    attention_scorer: Literal["cell", "context"] = "cell"
    # Hidden width k of the attention (0 = the block's input channels C, as the reference).
    attention_hidden: int = 0
    # The audio attention's own hidden width (0 = attention_hidden): a mel chunk has ~2× a face's cells, so a
    # narrower scorer there keeps the attention's cost below that of the sparse blocks it selects for.
    attention_hidden_audio: int = 0
    # Average scores over k×k windows of active cells before the softmax (0 = off; odd k >= 3).
    attention_smoothing: int = 0
    # Keep floor in the selection rule (not in the paper), per modality: the nucleus also keeps the ⌈ρ·N⌉ most
    # attended active cells of every frame (0 = the paper's rule). Faces are cheaper per frame than mel chunks,
    # so a selection recipe can keep more of them.
    min_keep_audio: float = 0.0
    min_keep_visual: float = 0.0
    # Temperature T of the straight-through keep gate's surrogate (training only; no effect on the forward pass).
    keep_temperature: float = 1.0
    # BatchNorm statistics of the sparse blocks per top-p regime (models/sparse/batchnorm.py): the p values of the
    # regimes; a forward at p uses the nearest one. () = one set of statistics (the paper and the reference).
    bn_top_p: tuple[float, ...] = ()
    # The attention scorer reads the block's input features detached (true): the selection losses then train the
    # scorer only, never reshape the CNN's features (the task loss still trains them through the kept cells).
    detach_scorer_input: bool = False
    # The attention query: "text" (the paper: the transcript's CLS) or "text+posterior" (the CLS plus the detached
    # class posterior of the branches computed before this one: text for audio; text and audio for faces).
    attention_query: Literal["text", "text+posterior"] = "text"
    modalities: tuple[str, ...] = MODALITIES

    def _range_problems(self) -> list[str]:
        out = self._check(bool(self.classes), "classes", "name at least one class")
        out += self._check(self.keep_temperature > 0, "keep_temperature", "be > 0")
        out += self._check(self.attention_smoothing == 0 or (self.attention_smoothing >= 3
                                                             and self.attention_smoothing % 2 == 1),
                           "attention_smoothing", "be 0 (off) or an odd kernel size >= 3")
        if self.arch != "mesm":
            return out
        out += self._check(1 <= self.n_sparse_blocks <= len(self.block_channels), "n_sparse_blocks",
                           f"be between 1 and the {len(self.block_channels)} VGG blocks for MESM")
        if "text" not in self.modalities:
            # The transcript is the query of every attention layer; the reference raises here too.
            out.append(f"MESM needs the text modality (its attention is queried by the transcript); got modalities "
                       f"{tuple(self.modalities)}. Use FE2E for audio/visual-only models")
        if self.reference_block1_bug and self.attention_mode != "reference":
            out.append("model.reference_block1_bug=true needs model.attention_mode=reference")
        out += self._check(0.0 < self.top_p <= 1.0, "top_p", "be in (0, 1]")
        for name in ("min_keep_audio", "min_keep_visual"):
            out += self._check(0.0 <= getattr(self, name) <= 1.0, name, "be in [0, 1]")
        out += self._check(self.attention_hidden >= 0, "attention_hidden", "be >= 0 (0: the block's input channels)")
        out += self._check(self.attention_hidden_audio >= 0, "attention_hidden_audio", "be >= 0 (0: attention_hidden)")
        regimes = tuple(self.bn_top_p)
        out += self._check(all(0.0 < p <= 1.0 for p in regimes) and len(set(regimes)) == len(regimes), "bn_top_p",
                           "list distinct values in (0, 1]")
        return out


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
class BaselineModelConfig(_Section):
    """Architecture of one two-phase baseline (LF-LSTM, LF-TRANS, EmoEmbs, MulT; docs/baselines.md).

    The baselines read pre-extracted per-step feature vectors, so their only input geometry is the
    feature size per modality (``feature_sizes``, text/audio/visual), taken from the feature cache when
    a run is configured for one. Defaults fit the offline features of this project (GloVe-6B-50d text,
    84-d acoustic, 35-d AU proxy); the reference used 300/144/35. Reference quirks are behind flags,
    all off by default: ``faithful_padding`` (LF-LSTM/EmoEmbs: no sequence packing, the text vector is
    the BiLSTM output at the last *padded* step) and ``mask_text=False`` (LF-TRANS attends to text pads).
    """

    SECTION = "model"

    arch: Literal["lf_lstm", "lf_trans", "emoembs", "mult"] = "lf_lstm"
    classes: tuple[str, ...] = IEMOCAP_CLASSES
    modalities: tuple[str, ...] = MODALITIES
    # Per-step feature size of text, audio, visual (in MODALITIES order).
    feature_sizes: tuple[int, int, int] = (50, 84, 35)
    # Inputs are z-scored with the feature cache's train statistics (False = the reference: raw features). Part of
    # the model section because a checkpoint's inputs must be prepared the way it was trained.
    normalize_features: bool = True

    # LF-LSTM / EmoEmbs: reproduce the reference's unpacked padding (see the class docstring).
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
                raise ConfigError(
                    f"{len(self.label_words)} label words for {len(self.classes)} classes: {self.label_words}"
                )
            return tuple(self.label_words)
        missing = [c for c in self.classes if c not in LABEL_WORDS]
        if missing:
            raise ConfigError(f"no default label word for class(es) {missing}; set label_words")
        return tuple(LABEL_WORDS[c] for c in self.classes)

    def feature_size(self, modality: str) -> int:
        return int(self.feature_sizes[MODALITIES.index(modality)])

    def _range_problems(self) -> list[str]:
        out = self._check(bool(self.classes), "classes", "name at least one class")
        if not self.modalities or any(m not in MODALITIES for m in self.modalities):
            out.append(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        if len(self.feature_sizes) != 3 or min(self.feature_sizes) < 1:
            out.append(f"feature_sizes must be three positive ints (text, audio, visual), got {self.feature_sizes}")
        return out


ModelSection = ModelConfig | BaselineModelConfig


def model_config_type(arch: str) -> type:
    """The model-section dataclass of ``arch``: :class:`ModelConfig` (fe2e, mesm) or :class:`BaselineModelConfig`."""
    if arch in E2E_ARCHS:
        return ModelConfig
    if arch in BASELINE_ARCHS:
        return BaselineModelConfig
    raise ConfigError(f"unknown model arch {arch!r}; valid: {', '.join(E2E_ARCHS + BASELINE_ARCHS)}")


@dataclass
class DataConfig(_Section):
    """Clip preprocessing (docs/data.md, "One clip") and loader settings."""

    SECTION = "data"

    frame_interval_ms: int = 500
    face_size: int = 48
    face_margin: int = 2
    no_face_policy: Literal["center", "skip"] = "center"
    sample_rate: int = 16000
    n_fft: int = 400
    win_length: int = 400
    hop_length: int = 200
    n_mels: int = 128
    chunk_frames: int = 32
    max_duration_s: float = 60.0
    max_frames: int = 240
    max_file_mb: float = 200.0
    num_workers: int = 0

    def _range_problems(self) -> list[str]:
        return self._check(self.num_workers >= 0, "num_workers", "be >= 0")


@dataclass
class TrainConfig(_Section):
    """Optimisation recipe; paper defaults (docs/training.md, "Paper presets")."""

    SECTION = "train"

    lr: float = 5e-5
    batch_size: int = 8
    epochs: int = 40
    early_stop: int = 6
    weight_decay: float = 0.0
    clip_grad_norm: float = 0.0
    # "cosine": annealed per optimizer step over all epochs; "plateau": ReduceLROnPlateau on the validation loss,
    # stepped once an epoch (the EmoEmbs and MulT recipes).
    scheduler: Literal["none", "cosine", "plateau"] = "none"
    plateau_patience: int = 5
    plateau_factor: float = 0.1
    amp: bool = False
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"  # float16 adds a GradScaler (CUDA only)
    loss: Literal["bce"] = "bce"
    seed: int = 0
    select_metric: MetricName = "f1"
    # --- MESM selection training (docs/training.md, "Training the selection"); all off by default ---
    # MESM's attention layers learn at lr × attention_lr_factor (a warm-started CNN wants a low lr, the fresh
    # attention a higher one).
    attention_lr_factor: float = 1.0
    # Warm start: a checkpoint (FE2E or MESM) whose weights initialise the model (set by --init-from).
    init_from: str = ""
    # Keep-rate schedule: train at p = 1 for `top_p_warmup_epochs`, then anneal p to model.top_p along a
    # half-cosine over `top_p_anneal_epochs` (fractions of an epoch allowed; 0 and 0 = model.top_p throughout).
    top_p_warmup_epochs: float = 0.0
    top_p_anneal_epochs: float = 0.0
    # "fixed": every step at the schedule's p (model.top_p); "uniform": each step (after the warm-up) draws p
    # uniformly from `top_p_range`, so one checkpoint is trained for the whole slider.
    top_p_sampling: Literal["fixed", "uniform"] = "fixed"
    top_p_range: tuple[float, float] = (0.2, 1.0)
    # The straight-through keep gate (model.attention_mode=straight_through) runs on every `gate_every`-th step
    # (1: every step; 0: only where the self-saliency target needs it); the other steps run on
    # model.sparse_backend, the fast paths, and the attention learns there from the selection losses only.
    gate_every: int = 1
    # Keep band: per block and frame, penalise a nucleus that would keep fewer than `keep_min_fraction` or
    # more than `keep_max_fraction` of the active cells: weight · mean(relu(mass(top ⌈ρ_min·N⌉) − p)² +
    # relu(p − mass(top ⌈ρ_max·N⌉))²). 0 / 1 switch a side off.
    keep_min_fraction: float = 0.0
    keep_max_fraction: float = 1.0
    keep_band_weight: float = 10.0
    # Keep ratio across the slider (training/selection.py keep_ratio_penalty): at every p of `keep_ratio_top_p`
    # the nucleus should keep, on average over a batch's frames, about ρ · p^κ of a frame's active cells, with
    # ρ = `keep_ratio_audio` / `keep_ratio_visual` (0 = no budget for that modality).
    keep_ratio_audio: float = 0.0
    keep_ratio_visual: float = 0.0
    keep_ratio_weight: float = 10.0
    keep_ratio_top_p: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    # The kept share grows as ρ · p^κ with κ = `keep_ratio_power` (1: linear in p; 2: few cells at low p, most at
    # high p, which leaves the attention free to concentrate its first half of mass).
    keep_ratio_power: float = 1.0
    # The power for the blocks after the first (0 = keep_ratio_power): they choose among the cells the earlier blocks
    # kept, so a gentler curve there keeps the deeper grids from emptying at low p.
    keep_ratio_deep_power: float = 0.0
    # Saliency target for the attention: weight λ (λ · mean over the sparse blocks of CE(t, attention)) and power
    # γ of t ∝ |saliency|^γ; taken on the steps that run at p = 1 ("dense": warm-up and `dense_step_every`) or
    # on every step ("all").
    saliency_weight: float = 0.0
    saliency_power: float = 2.0
    saliency_at: Literal["dense", "all"] = "dense"
    # Whose saliency: "self" (∂L_task/∂m of the model's own keep gates, task loss only), "teacher" (Grad × Input
    # at the inputs of the dense teacher's last blocks, train.distill_from, computed once per training clip
    # before the first epoch: the teacher is fixed, so the target costs nothing per step), or "auto" (the
    # teacher's when a teacher is given, else the model's own).
    saliency_source: Literal["self", "teacher", "auto"] = "self"
    # Every k-th optimizer step runs at p = 1 (0 = never): the CNN keeps working densely, the saliency target
    # stays clean, and the other steps train at the scheduled p.
    dense_step_every: int = 0
    # Distillation from a dense teacher checkpoint (e.g. the FE2E the run starts from): BCE of the student's
    # logits against the teacher's probabilities, weight `distill_weight` (the task loss keeps weight 1).
    distill_from: str = ""
    distill_weight: float = 0.0
    # BatchNorm statistics per top-p regime (model.bn_top_p): before each validation, re-estimate every regime's
    # statistics on this many training batches at its p, no labels and no gradient (US-Nets); 0 = only the
    # running averages of the steps that happened to run near each p.
    bn_calibration_batches: int = 0
    # Model selection across the slider: the selection metric is the mean over these p of the validation metric,
    # thresholds tuned at each p (empty: model.top_p only). The checkpoint's thresholds stay model.top_p's.
    select_top_p: tuple[float, ...] = ()
    # Decision thresholds per p: the best checkpoint also stores thresholds chosen on validation at each of these p
    # (empty: one set, at model.top_p); evaluate, predict and the studio decide at p with the nearest p's set.
    threshold_top_p: tuple[float, ...] = ()

    @property
    def saliency_from(self) -> Literal["self", "teacher"]:
        """The saliency source in effect: ``auto`` is the teacher's when ``distill_from`` names one, else self."""
        if self.saliency_source == "auto":
            return "teacher" if self.distill_from else "self"
        return self.saliency_source  # type: ignore[return-value]

    def _range_problems(self) -> list[str]:
        check = self._check
        out = check(self.lr > 0, "lr", "be > 0") + check(self.batch_size >= 1, "batch_size", "be >= 1")
        out += check(self.epochs >= 1, "epochs", "be >= 1") + check(self.early_stop >= 0, "early_stop", "be >= 0")
        out += check(self.weight_decay >= 0, "weight_decay", "be >= 0")
        out += check(self.clip_grad_norm >= 0, "clip_grad_norm", "be >= 0 (0 = no clipping)")
        out += check(self.plateau_patience >= 0, "plateau_patience", "be >= 0")
        out += check(0 < self.plateau_factor < 1, "plateau_factor", "be in (0, 1)")
        out += check(self.attention_lr_factor > 0, "attention_lr_factor", "be > 0")
        for name in ("top_p_warmup_epochs", "top_p_anneal_epochs", "distill_weight", "keep_band_weight",
                     "saliency_weight", "dense_step_every", "gate_every", "keep_ratio_audio", "keep_ratio_visual",
                     "keep_ratio_weight", "bn_calibration_batches"):
            out += check(getattr(self, name) >= 0, name, "be >= 0")
        low, high = (tuple(self.top_p_range) + (0.0, 0.0))[:2]
        out += check(len(self.top_p_range) == 2 and 0 < low <= high <= 1, "top_p_range", "be [low, high] with 0 < low <= high <= 1")
        for name in ("keep_ratio_top_p", "select_top_p", "threshold_top_p"):
            out += check(all(0 < p <= 1 for p in getattr(self, name)), name, "list values in (0, 1]")
        if not 0 <= self.keep_min_fraction <= self.keep_max_fraction <= 1:
            out.append(f"train.keep_min_fraction and keep_max_fraction must satisfy 0 <= min <= max <= 1 "
                       f"(got {self.keep_min_fraction}, {self.keep_max_fraction})")
        out += check(self.saliency_power > 0, "saliency_power", "be > 0")
        out += check(self.keep_ratio_power > 0, "keep_ratio_power", "be > 0")
        out += check(self.keep_ratio_deep_power >= 0, "keep_ratio_deep_power", "be >= 0 (0: keep_ratio_power)")
        return out


@dataclass
class RunConfig:
    """One run: which model (``model``: :class:`ModelConfig` or :class:`BaselineModelConfig`, by ``model.arch``),
    the data settings and the optimisation recipe."""

    preset: str = ""
    model: ModelConfig | BaselineModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    version: int = CONFIG_VERSION

    # Short override names kept from the baselines' former CLI: ``--set normalize=false``.
    OVERRIDE_ALIASES: typing.ClassVar[dict[str, str]] = {"normalize": "model.normalize_features"}

    @property
    def is_baseline(self) -> bool:
        """True for a two-phase baseline (its model reads a feature cache), False for FE2E / MESM."""
        return isinstance(self.model, BaselineModelConfig)

    def problems(self) -> list[str]:
        """Every invalid value of every section, plus the rules that join two sections."""
        out = self.model.problems() + self.data.problems() + self.train.problems()
        train = self.train
        if train.saliency_weight > 0 and self.model.arch != "mesm":
            out.append("train.saliency_weight > 0 needs a MESM (FE2E has no attention to train)")
        elif train.saliency_weight > 0 and train.saliency_from == "self" and self.model.attention_mode != "straight_through":
            out.append("train.saliency_source=self needs model.attention_mode=straight_through (it reads the keep gates)")
        elif train.saliency_weight > 0 and self.model.attention_mode == "reference":
            out.append("train.saliency_weight > 0 needs a trainable attention (not model.attention_mode=reference)")
        if train.saliency_weight > 0 and train.saliency_from == "teacher" and not train.distill_from:
            out.append("train.saliency_source=teacher needs a dense teacher: --distill-from CHECKPOINT")
        if self.is_baseline:
            for name in ("init_from", "distill_from"):
                if getattr(train, name):
                    out.append(f"train.{name} needs an FE2E or MESM model (the two-phase baselines have no warm "
                               "start or teacher)")
        return out

    def validate(self) -> "RunConfig":
        """Raise :class:`ConfigError` naming every invalid field of every section; returns ``self``."""
        problems = self.problems()
        if problems:
            raise ConfigError("; ".join(problems))
        return self


# --- (de)serialisation -------------------------------------------------------------------------

def to_dict(cfg: Any) -> dict:
    """Dataclass → JSON-safe dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _coerce(value: Any, current: Any) -> Any:
    """``value`` (from JSON or the command line) as the type of the field's ``current`` value."""
    if isinstance(current, tuple) and isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(current, bool):
        # Only the words of a boolean: anything else (a typo such as "flase", a number) is an error, not False.
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in ("1", "true", "yes"):
            return True
        if word in ("0", "false", "no"):
            return False
        raise ValueError(f"expected a boolean (true/false), got {value!r}")
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float):
        return float(value)
    return value


def from_dict(cls: type, data: dict, where: str = "config") -> Any:
    """A dataclass ``cls`` from a JSON dict: defaults for missing fields, lists → tuples, strings → bools.

    Unknown fields raise :class:`ConfigError` naming ``where``. The model section of a RunConfig is the
    dataclass of its ``arch`` (:func:`model_config_type`). Nothing is validated here (see ``validate``).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)} for {cls.__name__}")
    obj = cls()
    for name, value in data.items():
        current = getattr(obj, name)
        if cls is RunConfig and name == "model":
            arch = value.get("arch", ModelConfig.arch) if isinstance(value, dict) else ModelConfig.arch
            value = from_dict(model_config_type(arch), value, f"{where}.{name}")
        elif dataclasses.is_dataclass(current):
            value = from_dict(type(current), value, f"{where}.{name}")
        else:
            value = _coerce(value, current)
        setattr(obj, name, value)
    return obj


def model_config_from_dict(data: dict, where: str = "config") -> ModelConfig | BaselineModelConfig:
    """The model section of its ``arch`` (default fe2e), not validated."""
    return from_dict(model_config_type(data.get("arch", ModelConfig.arch)), data, where)


def run_config_from_dict(data: dict, where: str = "config") -> RunConfig:
    """A saved RunConfig (``RUN/config.json``, a checkpoint's config sections), validated."""
    version = data.get("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise ConfigError(f"{where}: unknown config version {version!r} (this mesm_core reads version {CONFIG_VERSION})")
    cfg = from_dict(RunConfig, data, where)
    try:
        return cfg.validate()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Apply ``section.field=value`` overrides in place; values are parsed as JSON when possible.

    A boolean field takes true/false/yes/no/1/0 and nothing else (``normalize=flase`` is an error).
    Raises :class:`ConfigError` naming the bad key or value. Nothing is validated until ``validate()``.
    """
    aliases = getattr(cfg, "OVERRIDE_ALIASES", {})
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.field=value")
        path, raw = item.split("=", 1)
        target = cfg
        path = aliases.get(path.strip(), path.strip())
        parts = path.split(".")
        for part in parts[:-1]:
            if not hasattr(target, part) or not dataclasses.is_dataclass(getattr(target, part)):
                raise ConfigError(f"override {item!r}: no config section {part!r}")
            target = getattr(target, part)
        name = parts[-1]
        if not dataclasses.is_dataclass(target) or name not in {f.name for f in dataclasses.fields(target)}:
            raise ConfigError(f"override {item!r}: no field {name!r} in {type(target).__name__}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        try:
            setattr(target, name, _coerce(value, getattr(target, name)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"override {item!r}: {exc}") from exc
    return cfg
