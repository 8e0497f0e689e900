"""Typed configuration for models, preprocessing and training.

Every run resolves one :class:`RunConfig` (preset + overrides) and saves it as JSON beside its
checkpoints, so a checkpoint always says exactly how it was built and trained.

Overrides use dotted paths, e.g. ``apply_overrides(cfg, ["model.top_p=0.5", "train.lr=1e-4"])``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

CONFIG_VERSION = 1

IEMOCAP_CLASSES = ("ang", "exc", "fru", "hap", "neu", "sad")
MOSEI_CLASSES = ("anger", "disgust", "fear", "happy", "sad", "surprise")
MODALITIES = ("text", "audio", "visual")


@dataclass
class ModelConfig:
    """Architecture of FE2E / MESM (reference §1-§2)."""

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
    # Average scores over k×k windows of active cells before the softmax (0 = off; odd k >= 3).
    attention_smoothing: int = 0
    # Training-only knobs of the straight-through keep gate (no effect on the forward pass or on inference):
    # the surrogate's temperature T, and the weight λ / power γ of the self-distilled saliency target.
    keep_temperature: float = 1.0
    saliency_weight: float = 0.0
    saliency_power: float = 2.0
    modalities: tuple[str, ...] = MODALITIES


@dataclass
class DataConfig:
    """Clip preprocessing (reference §4) and loader settings."""

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


@dataclass
class TrainConfig:
    """Optimisation recipe (reference §6); paper defaults."""

    lr: float = 5e-5
    batch_size: int = 8
    epochs: int = 40
    early_stop: int = 6
    weight_decay: float = 0.0
    clip_grad_norm: float = 0.0
    scheduler: Literal["none", "cosine"] = "none"
    amp: bool = False
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"  # float16 adds a GradScaler (CUDA only)
    loss: Literal["bce"] = "bce"
    seed: int = 0
    select_metric: str = "f1"
    # --- MESM selection training (docs/training.md, "Training the selection"); all off by default ---
    # Warm start: a checkpoint (FE2E or MESM) whose weights initialise the model (set by --init-from).
    init_from: str = ""
    # Keep-rate schedule: train at p = 1 for `top_p_warmup_epochs`, then anneal p to model.top_p along a
    # half-cosine over `top_p_anneal_epochs` (fractions of an epoch allowed; 0 and 0 = model.top_p throughout).
    top_p_warmup_epochs: float = 0.0
    top_p_anneal_epochs: float = 0.0
    # Keep band: per block and frame, penalise a nucleus that would keep fewer than `keep_min_fraction` or
    # more than `keep_max_fraction` of the active cells: weight · mean(relu(mass(top ⌈ρ_min·N⌉) − p)² +
    # relu(p − mass(top ⌈ρ_max·N⌉))²). 0 / 1 switch a side off.
    keep_min_fraction: float = 0.0
    keep_max_fraction: float = 1.0
    keep_band_weight: float = 10.0
    # Distillation from a dense teacher checkpoint (e.g. the FE2E the run starts from): BCE of the student's
    # logits against the teacher's probabilities, weight `distill_weight` (the task loss keeps weight 1).
    distill_from: str = ""
    distill_weight: float = 0.0


@dataclass
class RunConfig:
    preset: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    version: int = CONFIG_VERSION


# --- (de)serialisation -------------------------------------------------------------------------

def to_dict(cfg: Any) -> dict:
    """Dataclass → JSON-safe dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _coerce(value: Any, annotation: Any, current: Any) -> Any:
    if isinstance(current, tuple) and isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(current, bool):
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes"):
                return True
            if value.lower() in ("0", "false", "no"):
                return False
            raise ValueError(f"expected a boolean, got {value!r}")
        return bool(value)
    if isinstance(current, int) and not isinstance(current, bool):
        return int(value)
    if isinstance(current, float):
        return float(value)
    return value


def _from_dict(cls: type, data: dict, where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)} for {cls.__name__}")
    obj = cls()
    for name, value in data.items():
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            value = _from_dict(type(current), value, f"{where}.{name}")
        else:
            value = _coerce(value, known[name].type, current)
        setattr(obj, name, value)
    return obj


def model_config_from_dict(data: dict, where: str = "config") -> ModelConfig:
    return _from_dict(ModelConfig, data, where)


def run_config_from_dict(data: dict, where: str = "config") -> RunConfig:
    version = data.get("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise ValueError(f"{where}: unknown config version {version!r} (this mesm_core reads version {CONFIG_VERSION})")
    return _from_dict(RunConfig, data, where)


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Apply ``section.field=value`` overrides in place; values are parsed as JSON when possible.

    Raises ValueError naming the bad key or value.
    """
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form section.field=value")
        path, raw = item.split("=", 1)
        target = cfg
        parts = path.strip().split(".")
        for part in parts[:-1]:
            if not hasattr(target, part) or not dataclasses.is_dataclass(getattr(target, part)):
                raise ValueError(f"override {item!r}: no config section {part!r}")
            target = getattr(target, part)
        name = parts[-1]
        if not dataclasses.is_dataclass(target) or name not in {f.name for f in dataclasses.fields(target)}:
            raise ValueError(f"override {item!r}: no field {name!r} in {type(target).__name__}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        try:
            setattr(target, name, _coerce(value, None, getattr(target, name)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"override {item!r}: {exc}") from exc
    return cfg
