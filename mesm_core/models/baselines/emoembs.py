"""EmoEmbs (Dai et al. 2020, "Modality-Transferable Emotion Embeddings"; repo ``src/models/eea.py``).

Each emotion is represented by the frozen word vector of its label word (``label_embeddings``,
(C, E), e.g. GloVe). Per modality a 2-layer bidirectional LSTM (directions summed) encodes the
sequence; the text vector (size E) is scored against the label vectors by dot product, and two
learned linear maps carry the label vectors into the acoustic and visual hidden spaces
(``Linear(E → H_a)``, ``Linear(E → H_v)``), where they are scored the same way. The three score
vectors are fused by ``Linear(3, 1, bias=False)`` initialised to 1/3 each.

Zero-shot: ``forward(batch, label_embeddings=new)`` scores any set of K label vectors, for example
an emotion word never seen in training, through the same encoders and maps (logits (B, K)).

Utterance vector: default ``h_n`` of the last layer of packed sequences (the true last step of each
direction); ``faithful_padding=True`` takes the output at the last *padded* step like the repo
(which only ever saw fixed-length aligned sequences).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from mesm_core.models.baselines.config import BaselineModelConfig
from mesm_core.models.baselines.late_fusion import LateFusion
from mesm_core.models.registry import register_arch
from mesm_core.types import FeatureBatch, ModelOutput

__all__ = ["EmoEmbs"]


@register_arch("emoembs", family="baseline", label_vectors=True)
class EmoEmbs(LateFusion):
    """``forward(batch, label_embeddings=None) -> ModelOutput`` (logits (B, C) or (B, K))."""

    def __init__(self, config: BaselineModelConfig, label_embeddings: torch.Tensor | None = None) -> None:
        super().__init__(config, label_embeddings=label_embeddings)

    def build(self, config: BaselineModelConfig, label_embeddings: torch.Tensor | None = None) -> None:
        self.label_words = config.resolved_label_words()
        n_classes = len(config.classes)
        hidden = dict(zip(("text", "audio", "visual"), config.emo_hidden))
        embedding_dim = hidden["text"]
        if label_embeddings is None:
            # Filled by load_state_dict (a checkpoint) or by the caller; zeros make a wrong build obvious.
            label_embeddings = torch.zeros(n_classes, embedding_dim)
        if tuple(label_embeddings.shape) != (n_classes, embedding_dim):
            raise ValueError(
                f"EmoEmbs: label embeddings {tuple(label_embeddings.shape)} must be (classes={n_classes}, "
                f"text hidden={embedding_dim}); the text hidden size must equal the word-vector size"
            )
        self.register_buffer("label_embeddings", label_embeddings.detach().float().clone())
        self.encoders = nn.ModuleDict({
            m: nn.LSTM(config.feature_size(m), hidden[m], num_layers=config.emo_layers, bidirectional=True,
                       batch_first=True, dropout=config.emo_dropout if config.emo_layers > 1 else 0.0)
            for m in self.modalities
        })
        # Text scores the label vectors directly; audio/visual through learned maps.
        self.label_maps = nn.ModuleDict({
            m: nn.Linear(embedding_dim, hidden[m]) for m in self.modalities if m != "text"
        })

    def fusion_init(self) -> float:
        return 1.0 / len(self.modalities)

    def encode(self, modality: str, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, d) → (B, H): forward + backward directions summed."""
        lstm = self.encoders[modality]
        if self.config.faithful_padding:
            output, _ = lstm(x)
            half = output.shape[-1] // 2
            last = output[:, -1]
            return last[:, :half] + last[:, half:]
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        _, (h_n, _) = lstm(packed)
        return h_n[-2] + h_n[-1]  # last layer, forward + backward

    def label_vectors(self, modality: str, label_embeddings: torch.Tensor) -> torch.Tensor:
        """(K, E) word vectors → (K, H_modality) in that modality's space."""
        return label_embeddings if modality == "text" else self.label_maps[modality](label_embeddings)

    def forward(
        self,
        batch: FeatureBatch,
        top_p: float | None = None,
        return_trace: bool = False,
        label_embeddings: torch.Tensor | None = None,
    ) -> ModelOutput:
        """Score the classes (or the K given label vectors (K, E)) for each utterance."""
        labels = self.label_embeddings if label_embeddings is None else label_embeddings.to(self.label_embeddings)
        if labels.ndim != 2 or labels.shape[1] != self.label_embeddings.shape[1]:
            raise ValueError(f"label_embeddings must be (K, {self.label_embeddings.shape[1]}), got {tuple(labels.shape)}")
        return self.fuse(batch, labels=labels)

    def modality_logits(self, modality: str, x: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, L, d) → scores (B, K) against the label vectors ``labels`` (K, E)."""
        return self.encode(modality, x, lengths) @ self.label_vectors(modality, labels).T
