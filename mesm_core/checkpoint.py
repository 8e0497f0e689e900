"""The checkpoint format: ``model.safetensors`` + ``config.json`` + a README.md model card (never pickle).

Layout (docs/architecture.md): ``DIR/model.safetensors``, ``DIR/config.json`` with
``{"version", "preset", "model", "data", "train", "classes", "thresholds", "metrics", "versions",
"text_encoder": {"stored", "source", "pretrained", "tokenizer"}, "metadata"}`` and ``DIR/README.md``.
A frozen *pretrained* text encoder is stored by reference (its weights are omitted and reloaded
from its source), so demo checkpoints stay a few MB. Every reader also accepts a training run directory
holding ``best/`` and/or ``last/`` checkpoints (it prefers ``best``). Every model family (FE2E, MESM, the
two-phase baselines) is saved and read the same way.

This module knows no model builder: it writes a model's weights and reads them back into a model
someone else built. ``mesm_core.loading.load_checkpoint`` builds the model a checkpoint describes (through
its family), then fills it from here.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mesm_core.config import CONFIG_VERSION, RunConfig, run_config_from_dict, to_dict
from mesm_core.errors import CheckpointError
from mesm_core.io import atomic_write, to_jsonable

__all__ = [
    "CheckpointError", "CheckpointInfo", "TextEncoderRef", "save_checkpoint", "read_checkpoint_info",
    "read_checkpoint_weights", "load_weights_into", "resolve_checkpoint_dir", "is_checkpoint_dir",
    "TrainingData", "read_training_data", "CONFIG_FILE", "WEIGHTS_FILE",
]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
TEXT_PREFIX = "text_encoder.model."
_KNOWN_KEYS = {"version", "preset", "model", "data", "train", "classes", "thresholds", "thresholds_by_top_p", "metrics",
               "versions", "text_encoder", "metadata"}


@dataclass(frozen=True)
class TextEncoderRef:
    """``config.json["text_encoder"]``: where a checkpoint's text encoder comes from.

    ``stored``: its weights are in ``model.safetensors`` (False: a frozen pretrained encoder stored by
    reference, reloaded from ``source``); ``source``: the text model (None: no text encoder, the baselines);
    ``pretrained``: it was built from pretrained weights; ``tokenizer``: the tokenizer kind it was saved with
    (None: unknown or none). Keys a newer writer adds are ignored; missing ones take these defaults.
    """

    stored: bool = True
    source: str | None = None
    pretrained: bool = False
    tokenizer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"stored": self.stored, "source": self.source, "pretrained": self.pretrained, "tokenizer": self.tokenizer}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "text_encoder") -> "TextEncoderRef":
        """Raises :class:`CheckpointError` naming ``where`` for a value of the wrong type."""
        ref = cls(**{k: data[k] for k in ("stored", "source", "pretrained", "tokenizer") if k in data})
        for name, kinds in (("stored", bool), ("pretrained", bool), ("source", (str, type(None))),
                            ("tokenizer", (str, type(None)))):
            if not isinstance(getattr(ref, name), kinds):
                raise CheckpointError(f"{where}: text_encoder.{name} is {getattr(ref, name)!r}, expected "
                                      f"{'true or false' if kinds is bool else 'a string or null'}")
        return ref


@dataclass
class CheckpointInfo:
    """What ``config.json`` says besides the weights (``load_checkpoint`` also attaches it as ``model.checkpoint_info``)."""

    path: Path
    run_config: RunConfig
    classes: tuple[str, ...]
    thresholds: list[float] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    text_encoder: TextEncoderRef = field(default_factory=TextEncoderRef)
    metadata: dict[str, Any] = field(default_factory=dict)
    # MESM trained for the whole slider: thresholds chosen on validation at each p of a grid (p → per class)
    thresholds_by_top_p: dict[float, list[float]] = field(default_factory=dict)

    @property
    def preset(self) -> str:
        return self.run_config.preset

    def thresholds_at(self, top_p: float | None) -> tuple[list[float] | None, float | None]:
        """The thresholds to decide with at ``top_p``: those chosen on validation at the nearest p of
        ``thresholds_by_top_p`` when the checkpoint has a table (and that p), else ``thresholds``. Returns
        (thresholds, the p they were chosen at, or None for the checkpoint's single set)."""
        if top_p is None or not self.thresholds_by_top_p:
            return self.thresholds, None
        nearest = min(self.thresholds_by_top_p, key=lambda q: (abs(q - float(top_p)), -q))
        return list(self.thresholds_by_top_p[nearest]), nearest


def _versions() -> dict[str, str]:
    import mesm_core

    out = {"torch": torch.__version__, "mesm": mesm_core.__version__}
    try:
        import transformers

        out["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - transformers is a hard dependency
        pass
    return out


def _text_by_reference(model: nn.Module) -> bool:
    encoder = getattr(model, "text_encoder", None)
    return encoder is not None and encoder.pretrained and not encoder.trainable


def _model_card(cfg: dict, sparse: bool) -> str:
    model, text = cfg["model"], cfg["text_encoder"]
    lines = [
        f"# {cfg.get('preset') or model['arch']} checkpoint",
        "",
        f"- Architecture: **{model['arch'].upper()}** (Dai et al., NAACL 2021 re-implementation, `mesm_core`)",
        f"- Classes ({len(cfg['classes'])}): {', '.join(cfg['classes'])}",
    ]
    if text.get("source"):
        lines.append(f"- Text encoder: `{text['source']}` "
                     f"({'weights stored here' if text['stored'] else 'stored by reference: loaded from its source'})")
    if sparse:
        lines.append(f"- Default top-p: {model['top_p']}; attention mode: {model['attention_mode']}")
    if cfg.get("thresholds"):
        lines.append("- Decision thresholds: " + ", ".join(f"{c} {t:.2f}" for c, t in zip(cfg["classes"], cfg["thresholds"])))
    if cfg.get("metrics"):
        lines.append("- Metrics: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in cfg["metrics"].items()))
    lines.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in cfg["versions"].items()))
    lines += [
        "",
        "Load with:",
        "",
        "```python",
        "from mesm_core import load_checkpoint",
        "model, info = load_checkpoint('THIS_DIRECTORY')",
        "```",
        "",
        "Outputs are per-class logits (multi-label: sigmoid, then the thresholds above).",
        "",
    ]
    return "\n".join(lines)


def save_checkpoint(
    model: nn.Module,
    directory: str | os.PathLike,
    *,
    run_config: RunConfig | None = None,
    thresholds: list[float] | None = None,
    metrics: dict[str, Any] | None = None,
    thresholds_by_top_p: dict[float, list[float]] | None = None,
    **metadata: Any,
) -> Path:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` to ``directory`` (created if needed).

    Each file is written atomically (temporary file + rename). ``run_config`` defaults to a RunConfig
    holding ``model.config`` (the saved "model" section is always ``model.config``, which describes the
    weights; a differing ``run_config.model`` only triggers a warning); ``thresholds`` are per class;
    ``thresholds_by_top_p`` maps p → per-class thresholds chosen at that p (MESM); extra keyword arguments land in
    ``config.json["metadata"]``. Returns the directory.
    """
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config
    if run_config is None:
        run_config = RunConfig(model=config)
    if to_dict(run_config.model) != to_dict(config):
        differing = sorted(k for k, v in to_dict(config).items() if to_dict(run_config.model).get(k) != v)
        warnings.warn(f"run_config.model differs from model.config in {differing}; saving model.config", stacklevel=2)
    for values in [thresholds, *(thresholds_by_top_p or {}).values()]:
        if values is not None and len(values) != len(config.classes):
            raise ValueError(f"got {len(values)} thresholds for {len(config.classes)} classes")
    by_reference = _text_by_reference(model)
    tensors = {
        k: v.detach().to("cpu").contiguous().clone()
        for k, v in model.state_dict().items()
        if not (by_reference and k.startswith(TEXT_PREFIX))
    }
    encoder = getattr(model, "text_encoder", None)
    cfg = {
        "version": CONFIG_VERSION,
        "preset": run_config.preset,
        "model": to_dict(config),
        "data": to_dict(run_config.data),
        "train": to_dict(run_config.train),
        "classes": list(config.classes),
        "thresholds": None if thresholds is None else [float(t) for t in thresholds],
        **({"thresholds_by_top_p": {f"{float(p):g}": [float(t) for t in values]
                                    for p, values in sorted(thresholds_by_top_p.items())}}
           if thresholds_by_top_p else {}),
        "metrics": to_jsonable(metrics or {}, fallback=str),
        "versions": _versions(),
        "text_encoder": TextEncoderRef(  # the two-phase baselines have none: stored, no source
            stored=not by_reference,
            source=getattr(config, "text_model", None),
            pretrained=bool(encoder.pretrained) if encoder is not None else False,
            tokenizer=model.tokenizer.kind if getattr(model, "tokenizer", None) is not None else None,
        ).to_dict(),
        "metadata": to_jsonable(metadata, fallback=str),
    }
    atomic_write(directory / WEIGHTS_FILE, save(tensors, metadata={"format": "pt"}))
    atomic_write(directory / CONFIG_FILE, json.dumps(cfg, indent=2) + "\n")
    atomic_write(directory / CARD_FILE, _model_card(cfg, sparse=bool(getattr(model, "supports_top_p", False))))
    return directory


def is_checkpoint_dir(directory: str | os.PathLike) -> bool:
    """True when ``directory`` itself holds a checkpoint's two files (no reading, no validation)."""
    directory = Path(directory)
    return (directory / CONFIG_FILE).is_file() and (directory / WEIGHTS_FILE).is_file()


def resolve_checkpoint_dir(directory: str | os.PathLike) -> Path:
    """``directory`` itself when it holds a checkpoint, else its ``best/`` or ``last/`` sub-directory."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"{directory}: checkpoint directory does not exist")
    if (directory / CONFIG_FILE).exists() or (directory / WEIGHTS_FILE).exists():
        return directory
    for name in ("best", "last"):
        if (directory / name / CONFIG_FILE).exists():
            return directory / name
    raise CheckpointError(f"{directory}: no {CONFIG_FILE} here nor in best/ or last/ (not a checkpoint directory)")


def _read_config(path: Path) -> dict:
    file = path / CONFIG_FILE
    if not file.is_file():
        raise CheckpointError(f"{file}: missing (every checkpoint needs {CONFIG_FILE} beside {WEIGHTS_FILE})")
    try:
        cfg = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{file}: expected a JSON object, got {type(cfg).__name__}")
    if cfg.get("kind") == "mesm-baseline":
        raise CheckpointError(f"{file}: a baseline checkpoint of the former baseline_train format; baselines are "
                              "trained by python -m mesm_core.train now (same format as FE2E/MESM): retrain it")
    if cfg.get("version") != CONFIG_VERSION:
        raise CheckpointError(f"{file}: unknown config version {cfg.get('version')!r} (this mesm_core reads version {CONFIG_VERSION})")
    unknown = set(cfg) - _KNOWN_KEYS
    if unknown:
        raise CheckpointError(f"{file}: unknown key(s) {sorted(unknown)}")
    for key in ("model", "text_encoder"):
        if not isinstance(cfg.get(key), dict):
            raise CheckpointError(f"{file}: missing or malformed {key!r} section")
    return cfg


def _read_run_config(path: Path, cfg: dict) -> RunConfig:
    config_file = path / CONFIG_FILE
    try:
        return run_config_from_dict(
            {k: cfg[k] for k in ("version", "preset", "model", "data", "train") if k in cfg}, where=str(config_file)
        )
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{config_file}: {exc}") from exc


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_file = path / WEIGHTS_FILE
    if not weights_file.is_file():
        raise CheckpointError(f"{weights_file}: missing")
    try:
        return load_file(str(weights_file), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_file}: unreadable safetensors file ({exc})") from exc


def _thresholds_in_class_order(cfg: dict, classes: tuple[str, ...], config_file: Path) -> list[float] | None:
    """Per-class thresholds as a list in class order (config.json may hold a list or {class: t})."""
    thresholds = cfg.get("thresholds")
    if thresholds is None:
        return None
    if isinstance(thresholds, dict):
        missing = [c for c in classes if c not in thresholds]
        if missing:
            raise CheckpointError(f"{config_file}: no threshold for class(es) {missing}")
        thresholds = [thresholds[c] for c in classes]
    if len(thresholds) != len(classes):
        raise CheckpointError(f"{config_file}: {len(thresholds)} thresholds for {len(classes)} classes")
    return [float(t) for t in thresholds]


def _threshold_table(cfg: dict, classes: tuple[str, ...], config_file: Path) -> dict[float, list[float]]:
    """``thresholds_by_top_p`` as {p: thresholds in class order} (empty when the checkpoint has none)."""
    table = cfg.get("thresholds_by_top_p") or {}
    if not isinstance(table, dict):
        raise CheckpointError(f"{config_file}: 'thresholds_by_top_p' must map p to per-class thresholds")
    out = {}
    for key, values in table.items():
        try:
            p = float(key)
        except ValueError:
            raise CheckpointError(f"{config_file}: 'thresholds_by_top_p' has a key {key!r} that is not a p") from None
        out[p] = _thresholds_in_class_order({"thresholds": values}, classes, config_file)
    return out


def read_checkpoint_info(directory: str | os.PathLike) -> CheckpointInfo:
    """What ``config.json`` says about a checkpoint (run config, classes, thresholds, metrics...),
    validated, without reading the weights or building the model. The one reader of checkpoint
    configs: the app's picker, the trainer and ``mesm_core.loading.load_checkpoint`` all go through it.

    Accepts a training run directory (its ``best/``, else ``last/``). Raises :class:`CheckpointError`.
    """
    path = resolve_checkpoint_dir(directory)
    cfg = _read_config(path)
    config_file = path / CONFIG_FILE
    run_cfg = _read_run_config(path, cfg)
    classes = tuple(cfg.get("classes") or run_cfg.model.classes)
    if classes != tuple(run_cfg.model.classes):
        raise CheckpointError(f"{config_file}: 'classes' {list(classes)} disagree with model.classes "
                              f"{list(run_cfg.model.classes)}")
    return CheckpointInfo(
        path=path, run_config=run_cfg, classes=classes,
        thresholds=_thresholds_in_class_order(cfg, classes, config_file), metrics=cfg.get("metrics") or {},
        thresholds_by_top_p=_threshold_table(cfg, classes, config_file),
        versions=cfg.get("versions") or {}, text_encoder=TextEncoderRef.from_dict(cfg["text_encoder"], str(config_file)),
        metadata=cfg.get("metadata") or {},
    )


@dataclass(frozen=True)
class TrainingData:
    """What a checkpoint says about the data it learned from (shown beside its predictions).

    ``description`` comes from ``config.json`` ``metadata["training_data"]`` when the checkpoint records
    it, else from the first "Trained on …" sentence of its model card; ``source`` says which (or
    "not recorded"). ``synthetic`` is True when that text or the validation metadata names synthetic data.
    """

    description: str | None
    source: str                       # "config.json" | "model card" | "not recorded"
    synthetic: bool
    card: Path | None                 # the model card file, when there is one
    validation_dataset: str | None = None


_TRAINED_ON = re.compile(r"trained on\b.*?(?:\.(?=\s+[A-Z])|\.\s*$|$)", re.IGNORECASE | re.DOTALL)


def _card_sentence(card: Path) -> str | None:
    """The first "Trained on …" sentence of a model card, markdown emphasis and code marks removed."""
    try:
        text = card.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for paragraph in re.split(r"\n\s*\n", text):
        found = _TRAINED_ON.search(" ".join(paragraph.split()))
        if found:
            return re.sub(r"[*`_]{1,2}(\S[^*`]*?)[*`_]{1,2}", r"\1", found.group(0)).strip()
    return None


def read_training_data(directory: str | os.PathLike) -> TrainingData:
    """What the checkpoint at ``directory`` was trained on, from its own files (see :class:`TrainingData`).

    Raises :class:`CheckpointError` like :func:`read_checkpoint_info`.
    """
    info = read_checkpoint_info(directory)
    card = info.path / CARD_FILE
    card = card if card.is_file() else None
    recorded = info.metadata.get("training_data")
    if isinstance(recorded, dict):
        recorded = recorded.get("description")
    validation = info.metadata.get("validation") or {}
    dataset = validation.get("dataset") if isinstance(validation, dict) else None
    if isinstance(recorded, str) and recorded.strip():
        description, source = recorded.strip(), "config.json"
    elif card is not None and (sentence := _card_sentence(card)):
        description, source = sentence, "model card"
    else:
        description, source = None, "not recorded"
    synthetic = "synthetic" in (description or "").lower() or str(dataset or "").lower() == "synthetic"
    return TrainingData(description=description, source=source, synthetic=synthetic, card=card,
                        validation_dataset=None if dataset is None else str(dataset))


def read_checkpoint_weights(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], RunConfig, Path]:
    """(tensors on CPU, the saved RunConfig, the resolved checkpoint directory) without building a model.

    For warm starts (``mesm_core.training.warm_start``). Raises :class:`CheckpointError`.
    """
    info = read_checkpoint_info(directory)
    return _read_tensors(info.path), info.run_config, info.path


def _check_tensors(tensors: dict[str, torch.Tensor], model: nn.Module, weights_file: Path, *,
                   text_stored: bool | None, what: str) -> None:
    """Raise :class:`CheckpointError` unless ``tensors`` fit ``model`` key for key and shape for shape.

    ``text_stored``: True the file must hold the text encoder's weights, False it must not (stored by
    reference), None either way.
    """
    state = model.state_dict()
    required = {k for k in state if text_stored or not k.startswith(TEXT_PREFIX)}
    allowed = set(state) if text_stored is not False else required
    missing, unexpected = sorted(required - set(tensors)), sorted(set(tensors) - allowed)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) e.g. {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) e.g. {unexpected[:5]}")
        raise CheckpointError(f"{weights_file}: weights do not match {what}: {'; '.join(parts)}")
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(state[key].shape):
            raise CheckpointError(
                f"{weights_file}: shape mismatch for {key}: file {tuple(value.shape)} vs model {tuple(state[key].shape)}"
            )


def load_weights_into(model: nn.Module, directory: str | os.PathLike, *, text_stored: bool | None = None,
                      what: str = "the model") -> Path:
    """Load a checkpoint's ``model.safetensors`` into ``model`` in place (same architecture; the trainer
    reloads ``best/`` this way, ``load_checkpoint`` fills the model it built).

    ``text_stored``: True the file must hold the text encoder's weights, False it must not (a frozen
    pretrained encoder stored by reference, already in ``model``), None either way. ``what`` names the model
    in errors. Raises :class:`CheckpointError` naming the file for missing/unexpected keys or shape
    mismatches. Returns the weights file.
    """
    path = resolve_checkpoint_dir(directory)
    tensors = _read_tensors(path)
    _check_tensors(tensors, model, path / WEIGHTS_FILE, text_stored=text_stored, what=what)
    model.load_state_dict(tensors, strict=False)
    return path / WEIGHTS_FILE
