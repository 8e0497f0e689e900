"""Training and evaluation of the two-phase baselines on a feature cache (``python -m mesm_core.baseline_train``).

The protocol is MESM's (reference §6): Adam, ``BCEWithLogitsLoss`` with pos_weight = neg/pos from
the train split, optional grad-norm clipping, early stopping on the validation average F1 with
per-class thresholds tuned on validation (0.05…0.95), and the test split scored with the
thresholds of the best validation epoch. EmoEmbs and MulT add ReduceLROnPlateau on the validation
loss (their own recipes).

A run directory holds ``best/model.safetensors`` + ``best/config.json`` (config, classes, thresholds,
feature cache facts; no pickled code), ``history.json`` and ``test_metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mesm_core.baseline_presets import (
    BaselineRunConfig,
    baseline_config_from_dict,
    get_baseline_preset,
    list_baseline_presets,
)
from mesm_core.features.cache import FeatureCache
from mesm_core.features.dataset import FeatureDataset, make_feature_loader, pos_weight
from mesm_core.metrics import MetricsReport, choose_thresholds, compute_metrics
from mesm_core.models.baselines import create_baseline

__all__ = ["BaselineResult", "train_baseline", "load_baseline", "predict_split", "label_embeddings_for", "main"]


@dataclass
class BaselineResult:
    run_dir: Path
    config: BaselineRunConfig
    best_epoch: int
    valid_report: MetricsReport
    test_report: MetricsReport | None
    parameters: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def label_embeddings_for(cfg: BaselineRunConfig) -> torch.Tensor:
    """EmoEmbs' frozen label vectors: GloVe 6B 50-d of each class's label word (C, 50)."""
    from mesm_core.features.text import load_glove

    glove = load_glove()
    if cfg.model.emo_hidden[0] != glove.dim:
        raise ValueError(f"EmoEmbs: text hidden size {cfg.model.emo_hidden[0]} must equal the label-vector size "
                         f"{glove.dim} (GloVe 6B 50-d); set model.emo_hidden=[{glove.dim}, ...]")
    return torch.from_numpy(glove.vectors(cfg.model.resolved_label_words()))


def _configure_for_cache(cfg: BaselineRunConfig, cache: FeatureCache) -> BaselineRunConfig:
    cfg.model.feature_sizes = cache.feature_sizes
    if cache.classes:
        if tuple(cfg.model.classes) != cache.classes:
            cfg.model.classes = cache.classes
            if cfg.model.label_words and len(cfg.model.label_words) != len(cache.classes):
                cfg.model.label_words = ()
    return cfg


def build_baseline_model(cfg: BaselineRunConfig) -> nn.Module:
    embeddings = label_embeddings_for(cfg) if cfg.model.arch == "emoembs" else None
    return create_baseline(cfg.model, embeddings)


@torch.no_grad()
def predict_split(model: nn.Module, dataset: FeatureDataset, batch_size: int = 64, device: str = "cpu",
                  criterion: nn.Module | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(probs (N, C), labels (N, C), mean loss or NaN) of a split, in dataset order."""
    model.eval()
    probs, labels, loss_sum = [], [], 0.0
    for batch in make_feature_loader(dataset, batch_size, shuffle=False):
        batch = batch.to(device)
        logits = model(batch).logits
        probs.append(torch.sigmoid(logits).cpu().numpy())
        labels.append(batch.labels.cpu().numpy())
        if criterion is not None:
            loss_sum += float(criterion(logits, batch.labels)) * batch.batch_size
    return np.concatenate(probs), np.concatenate(labels), loss_sum / len(dataset) if criterion else math.nan


def _save(model: nn.Module, directory: Path, cfg: BaselineRunConfig, thresholds: list[float], cache: FeatureCache,
          metrics: dict) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"))
    payload = {
        "kind": "mesm-baseline", "config": cfg.to_dict(), "classes": list(cfg.model.classes),
        "thresholds": [float(t) for t in thresholds],
        "features": {"cache": str(cache.root), "sizes": cache.sizes, "names": cache.info.get("names", {})},
        "metrics": metrics, "torch": torch.__version__,
    }
    (directory / "config.json").write_text(json.dumps(payload, indent=2) + "\n")


def load_baseline(directory: str | Path) -> tuple[nn.Module, BaselineRunConfig, list[float]]:
    """A saved baseline (``RUN/best``) → (model in eval mode, config, validation thresholds)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    path = directory / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a baseline checkpoint (config.json is missing)")
    payload = json.loads(path.read_text())
    if payload.get("kind") != "mesm-baseline":
        raise ValueError(f"{path}: not a baseline checkpoint (kind {payload.get('kind')!r})")
    cfg = baseline_config_from_dict(payload["config"], str(path))
    model = create_baseline(cfg.model)
    state = load_file(str(directory / "model.safetensors"))
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, cfg, list(payload["thresholds"])


def train_baseline(cfg: BaselineRunConfig, feature_cache: str | Path | FeatureCache, run_dir: str | Path, *,
                   device: str = "cpu", progress: bool = True, max_steps: int | None = None) -> BaselineResult:
    """Train one baseline on the cache's train split, select on valid, score test (if present)."""
    started = time.time()
    cache = feature_cache if isinstance(feature_cache, FeatureCache) else FeatureCache(feature_cache)
    cfg = _configure_for_cache(cfg, cache)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _seed(cfg.train.seed)
    datasets = {split: FeatureDataset(cache, split, normalize=cfg.normalize)
                for split in ("train", "valid", "test") if cache.ids(split)}
    for split in ("train", "valid"):
        if split not in datasets:
            raise ValueError(f"{cache.root}: the {split} split is empty (splits: {cache.splits()})")
    train_labels = datasets["train"].labels()
    model = build_baseline_model(cfg).to(device)
    criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight(train_labels).to(device))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr,
                                 weight_decay=cfg.train.weight_decay)
    scheduler = None
    if cfg.train.plateau_patience > 0:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=cfg.train.plateau_factor,
                                                               patience=cfg.train.plateau_patience)
    loader = make_feature_loader(datasets["train"], cfg.train.batch_size, shuffle=True, seed=cfg.train.seed)
    classes = tuple(cfg.model.classes)
    best_metric, best_epoch, best_state, best_report = -math.inf, -1, None, None
    history: list[dict] = []
    stale, steps = 0, 0
    for epoch in range(cfg.train.epochs):
        model.train()
        loss_sum, seen = 0.0, 0
        for batch in loader:
            batch = batch.to(device)
            loss = criterion(model(batch).logits, batch.labels)
            if not torch.isfinite(loss):
                raise RuntimeError(f"{cfg.preset or cfg.model.arch}: training loss is {loss.item()} at epoch {epoch + 1}; "
                                   "try a lower train.lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.train.clip_grad_norm > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad_norm)
            optimizer.step()
            loss_sum += float(loss.detach()) * batch.batch_size
            seen += batch.batch_size
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        probs, labels, valid_loss = predict_split(model, datasets["valid"], device=device, criterion=criterion)
        report = compute_metrics(probs, labels, choose_thresholds(probs, labels), classes)
        metric = report.average[cfg.train.select_metric]
        improved = metric > best_metric
        if improved:
            best_metric, best_epoch, best_report, stale = metric, epoch, report, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if scheduler is not None:
            scheduler.step(valid_loss)
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "valid_loss": valid_loss,
                        f"valid_{cfg.train.select_metric}": metric, "improved": improved,
                        "lr": optimizer.param_groups[0]["lr"]})
        if progress:
            print(f"{cfg.preset or cfg.model.arch} seed {cfg.train.seed} epoch {epoch + 1}: train loss "
                  f"{loss_sum / max(seen, 1):.4f}, valid loss {valid_loss:.4f}, valid {cfg.train.select_metric} "
                  f"{metric:.4f}{' (best)' if improved else ''}", file=sys.stderr, flush=True)
        if cfg.train.early_stop > 0 and stale >= cfg.train.early_stop:
            break
        if max_steps is not None and steps >= max_steps:
            break
    assert best_state is not None and best_report is not None
    model.load_state_dict(best_state)
    test_report = None
    if "test" in datasets:
        probs, labels, _ = predict_split(model, datasets["test"], device=device)
        test_report = compute_metrics(probs, labels, best_report.thresholds, classes)
    parameters = sum(p.numel() for p in model.parameters())
    _save(model, run_dir / "best", cfg, best_report.thresholds, cache,
          {"split": "valid", "epoch": best_epoch + 1, **best_report.to_dict()})
    (run_dir / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    if test_report is not None:
        (run_dir / "test_metrics.json").write_text(json.dumps(
            {"split": "test", "thresholds_from": "validation (best epoch)", "best_epoch": best_epoch + 1,
             "parameters": parameters, **test_report.to_dict()}, indent=2) + "\n")
    return BaselineResult(run_dir, cfg, best_epoch + 1, best_report, test_report, parameters,
                          time.time() - started, history)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesm_core.baseline_train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", required=True, choices=list_baseline_presets())
    parser.add_argument("--features", required=True, help="feature cache directory (python -m mesm_core.features build)")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="override, e.g. --set model.faithful_padding=true --set normalize=false")
    args = parser.parse_args(argv)
    cfg = get_baseline_preset(args.preset).apply_overrides(args.overrides)
    if args.seed is not None:
        cfg.train.seed = args.seed
    if args.epochs is not None:
        cfg.train.epochs = args.epochs
    result = train_baseline(cfg, args.features, args.run_dir, device=args.device)
    print(f"best epoch {result.best_epoch}; validation:\n{result.valid_report.format_table()}")
    if result.test_report is not None:
        print(f"test (validation thresholds):\n{result.test_report.format_table()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
