"""FE2E: the fully end-to-end multimodal model (paper §4.2; docs/models.md, "FE2E"), and the shared base class.

Branches: text (HF encoder → last-layer CLS → Linear), audio and visual (VGG-style CNN per
frame/chunk → flatten MLP → temporal Transformer with CLS → Linear). Per-branch logits are fused
by a bias-free Linear(M, 1) over the stacked logits (order text, audio, visual). Outputs are raw
logits (BCE-with-logits training, sigmoid at evaluation).

Input normalisation (face mean/std, audio transform) is part of the model so checkpoints carry it;
no other preprocessing happens here.
"""

from __future__ import annotations

import torch
from torch import nn

from mesm_core.config import MODALITIES, ModelConfig
from mesm_core.flops import build_report, dense_cnn_rows, sparse_block_rows
from mesm_core.models.registry import get_arch, register_arch
from mesm_core.models.temporal import TemporalEncoder
from mesm_core.models.text import TextEncoder, TextTokenizer, build_text_encoder
from mesm_core.models.vgg import FlattenProjection, VGGEncoder, encoder_geometry
from mesm_core.types import Batch, FlopsRow, ModelOutput, SparseStageOutput

__all__ = ["ModalityBranch", "MultimodalModel", "FE2E", "AUDIO_LOG_EPS"]

AUDIO_LOG_EPS = 1e-6
_SIGNALS = ("audio", "visual")  # non-text modalities, in fusion order


class ModalityBranch(nn.Module):
    """One non-text modality: CNN (dense part) → [optional sparse stage] → flatten MLP → Transformer → head."""

    def __init__(self, config: ModelConfig, in_channels: int, input_hw: tuple[int, int], n_dense_blocks: int) -> None:
        super().__init__()
        self.in_channels, self.input_hw, self.n_dense_blocks = in_channels, input_hw, n_dense_blocks
        self.cnn = VGGEncoder(
            in_channels, config.stem_channels, config.stem_kernel,
            tuple(config.block_channels[:n_dense_blocks]), tuple(config.pool_after),
        )
        shapes = encoder_geometry(input_hw, config.block_channels, config.pool_after, config.stem_channels)
        self.dense_shape = shapes[n_dense_blocks]   # (C, H, W) after the dense part
        self.out_shape = shapes[-1]                 # (C, H, W) after the whole CNN
        c, h, w = self.out_shape
        if h < 1 or w < 1:
            raise ValueError(f"input {input_hw} is too small for {len(config.pool_after) + 1} pooling steps")
        self.projection = FlattenProjection(c * h * w, config.flatten_hidden, config.trans_dim)
        self.temporal = TemporalEncoder(
            config.trans_dim, config.trans_layers, config.trans_heads, config.trans_ff,
            config.trans_dropout, config.positional_encoding,
        )
        self.head = nn.Linear(config.trans_dim, len(config.classes))

    def encode_dense(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) normalised → (N, C, h, w); N = 0 is allowed."""
        if x.shape[0] == 0:
            return x.new_zeros(0, *self.dense_shape)
        return self.cnn(x)


class MultimodalModel(nn.Module):
    """Base of FE2E and MESM: text encoder, modality branches, fusion, two-stage forward.

    Subclasses add a sparse stage by overriding :meth:`_sparse_stage` (FE2E: identity) and register
    themselves (``models/registry.py``), which sets their ``arch``.
    """

    arch = ""

    @classmethod
    def from_config(cls, config: ModelConfig, *, pretrained: bool = True) -> "MultimodalModel":
        """The registry's builder: ``pretrained`` loads the text encoder's weights (False: random, offline)."""
        return cls(config, text_pretrained=pretrained)

    def __init__(self, config: ModelConfig, text_pretrained: bool = True, n_sparse_blocks: int = 0) -> None:
        super().__init__()
        self.config = config
        unknown = set(config.modalities) - set(MODALITIES)
        if unknown or not config.modalities:
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {config.modalities}")
        if not config.classes:
            raise ValueError("config.classes is empty")
        n_classes = len(config.classes)
        self.modalities = tuple(m for m in MODALITIES if m in config.modalities)  # text, audio, visual
        self.text_encoder: TextEncoder | None = None
        self.tokenizer: TextTokenizer | None = None
        self.text_head: nn.Linear | None = None
        if "text" in self.modalities or n_sparse_blocks > 0:
            self.text_encoder, self.tokenizer = build_text_encoder(
                config.text_model, max_length=config.text_max_len, pretrained=text_pretrained,
                trainable=config.text_trainable,
            )
            if "text" in self.modalities:
                self.text_head = nn.Linear(self.text_encoder.hidden_size, n_classes)
        n_dense = len(config.block_channels) - n_sparse_blocks
        if n_dense < 0:
            raise ValueError(f"n_sparse_blocks={n_sparse_blocks} exceeds the {len(config.block_channels)} VGG blocks")
        geometry = {"visual": (3, (config.face_size, config.face_size)), "audio": (1, (config.n_mels, config.chunk_frames))}
        self.branches = nn.ModuleDict(
            {m: ModalityBranch(config, *geometry[m], n_dense_blocks=n_dense) for m in _SIGNALS if m in self.modalities}
        )
        self.fusion = nn.Linear(len(self.modalities), 1, bias=False)
        self.register_buffer("face_mean", torch.tensor(config.face_mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("face_std", torch.tensor(config.face_std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    # --- helpers ------------------------------------------------------------------------------

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.config.classes)

    def train(self, mode: bool = True) -> "MultimodalModel":
        super().train(mode)
        if self.text_encoder is not None:
            self.text_encoder.train(mode)  # a frozen encoder keeps itself in eval mode
        return self

    def param_groups(self, lr: float, attention_lr_factor: float = 1.0) -> list[dict]:
        """Adam parameter groups: text encoder + text head at ``lr · text_lr_factor``; MESM's attention layers
        at ``lr · attention_lr_factor`` (group "attention", only when the factor is not 1); the rest at ``lr``."""
        text_ids = set()
        text_params = []
        for module in (self.text_encoder, self.text_head):
            if module is not None:
                for p in module.parameters():
                    if p.requires_grad:
                        text_ids.add(id(p))
                        text_params.append(p)
        attention_params = []
        if attention_lr_factor != 1.0:
            attention_params = [p for n, p in self.named_parameters() if ".sparse.attention." in n and p.requires_grad]
        attention_ids = {id(p) for p in attention_params}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in text_ids | attention_ids]
        groups = [{"params": rest, "lr": lr, "name": "main"}]
        if text_params:
            groups.append({"params": text_params, "lr": lr * self.config.text_lr_factor, "name": "text"})
        if attention_params:
            groups.append({"params": attention_params, "lr": lr * attention_lr_factor, "name": "attention"})
        return groups

    def normalise(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Raw model input → CNN input. visual: (x − mean) / std in pixel units; audio: power or log(power + ε)."""
        if modality == "visual":
            return (x - self.face_mean.to(x.dtype)) / self.face_std.to(x.dtype)
        if self.config.audio_transform == "log":
            return torch.log(x.clamp_min(0) + AUDIO_LOG_EPS)
        return x

    @staticmethod
    def _inputs(batch: Batch, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
        return (batch.faces, batch.face_lengths) if modality == "visual" else (batch.chunks, batch.chunk_lengths)

    def _check_batch(self, batch: Batch) -> None:
        b = batch.batch_size
        for m in self.branches:
            x, lengths = self._inputs(batch, m)
            branch = self.branches[m]
            expected = (branch.in_channels, *branch.input_hw)
            if x.dim() != 4 or tuple(x.shape[1:]) != expected:
                raise ValueError(f"{m} input must be (N, {expected[0]}, {expected[1]}, {expected[2]}), got {tuple(x.shape)}")
            if lengths.shape != (b,):
                raise ValueError(f"{m} lengths must have shape ({b},), got {tuple(lengths.shape)}")
            if int(lengths.sum()) != x.shape[0]:
                raise ValueError(f"{m} lengths sum to {int(lengths.sum())} but the batch holds {x.shape[0]} items")

    # --- two-stage API --------------------------------------------------------------------------

    def encode_text(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        """Tokenised text (B, L) → (B, D_text) last-layer CLS vectors."""
        if self.text_encoder is None:
            raise RuntimeError("this model has no text encoder (modalities without 'text')")
        return self.text_encoder(text)

    def encode_dense(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Low-level dense CNN features: {"visual": (N_f, C, H, W), "audio": (N_c, C, H, W)} (p-independent)."""
        self._check_batch(batch)
        return {m: branch.encode_dense(self.normalise(m, self._inputs(batch, m)[0])) for m, branch in self.branches.items()}

    @property
    def supports_top_p(self) -> bool:
        """Whether the model has a top-p selection (MESM) or is dense (FE2E: ``top_p`` is ignored): its
        registry entry's capability."""
        return get_arch(self.arch).supports_top_p

    def _stage_query(self, modality: str, text_cls: torch.Tensor, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        """The per-utterance (B, D) query of ``modality``'s sparse stage, from the text CLS and the logits so far."""
        return text_cls

    def _sparse_stage(
        self, modality: str, dense: torch.Tensor, query: torch.Tensor | None, top_p: float | None, return_trace: bool,
        keep_floor: bool = True, straight_through: bool | None = None,
    ) -> SparseStageOutput:
        """FE2E: the dense features go straight to the flatten MLP."""
        return SparseStageOutput(features=dense)

    def forward_prepared(
        self,
        batch: Batch,
        text_cls: torch.Tensor | None,
        dense: dict[str, torch.Tensor],
        top_p: float | None = None,
        return_trace: bool = False,
        keep_floor: bool = True,
        straight_through: bool | None = None,
    ) -> ModelOutput:
        """Finish the forward pass from :meth:`encode_text` / :meth:`encode_dense` outputs.

        MESM only: ``top_p`` (default ``config.top_p``); ``keep_floor=False`` runs the paper's rule without the
        configured keep floors; ``straight_through=False`` skips the keep gate on a training step."""
        logits: dict[str, torch.Tensor] = {}
        if self.text_head is not None:
            logits["text"] = self.text_head(text_cls)
        rows: list[FlopsRow] = []
        pending: list = []
        trace: dict | None = {} if return_trace else None
        selections: dict = {}
        for m, branch in self.branches.items():
            x, lengths = self._inputs(batch, m)
            rows += dense_cnn_rows(m, x.shape[0], branch.in_channels, branch.input_hw, self.config, branch.n_dense_blocks)
            query = None
            if text_cls is not None and self.text_encoder is not None:
                utterance = torch.repeat_interleave(torch.arange(lengths.shape[0], device=lengths.device), lengths)
                query = self._stage_query(m, text_cls, logits)[utterance.to(text_cls.device)]
            stage = self._sparse_stage(m, dense[m], query, top_p, return_trace, keep_floor, straight_through)
            stage_rows, stage_pending = sparse_block_rows(m, stage.counts)
            rows += stage_rows
            pending += stage_pending
            if trace is not None and stage.traces is not None:
                trace[m] = stage.traces
            if stage.selections:
                selections[m] = stage.selections
            features = stage.features
            tokens = branch.projection(features) if features.shape[0] else features.new_zeros(0, self.config.trans_dim)
            logits[m] = branch.head(branch.temporal(tokens, lengths))
        stacked = torch.stack([logits[m] for m in self.modalities], dim=-1)  # (B, C, M)
        fused = self.fusion(stacked).squeeze(-1)
        return ModelOutput(
            logits=fused,
            modality_logits={m: logits[m] for m in self.modalities},
            fusion_weights=self.fusion.weight.view(-1),
            flops=build_report(rows, pending),
            trace=trace if trace else None,
            selections=selections,
        )

    def forward(
        self, batch: Batch, top_p: float | None = None, return_trace: bool = False, keep_floor: bool = True,
        straight_through: bool | None = None,
    ) -> ModelOutput:
        """Batch → ModelOutput (logits (B, C) raw). MESM: ``top_p`` overrides config.top_p; ``keep_floor`` and
        ``straight_through`` as in :meth:`forward_prepared`."""
        text_cls = self.encode_text(batch.text) if self.text_encoder is not None else None
        return self.forward_prepared(batch, text_cls, self.encode_dense(batch), top_p=top_p, return_trace=return_trace,
                                     keep_floor=keep_floor, straight_through=straight_through)


@register_arch("fe2e", family="e2e")
class FE2E(MultimodalModel):
    """Fully end-to-end model: every VGG block dense (reference ``MME2E``)."""

    def __init__(self, config: ModelConfig, text_pretrained: bool = True) -> None:
        super().__init__(config, text_pretrained=text_pretrained, n_sparse_blocks=0)
