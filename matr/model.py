"""MATR, the Moment Alignment TRansformer (paper section 3.2).

Data flow for a batch of B pairs, target of M frames, query of N frames, hidden size d:

1. ``Projection``: CLIP features (B, M, 512) / (B, N, 512) -> E_t (B, M, d) / E_q (B, N, d), one
   two-layer perceptron shared by target and query.
2. Pre-fusion alignment: ``align_pre`` loss on (E_t, E_q) and, at inference, the hard alignment
   A^pre (Table 4).
3. Encoder: k post-norm Transformer layers over E_c = [E_t; E_q] (B, M + N, d) -> [E_t^g; E_q^g].
4. Post-fusion alignment: ``align_post`` loss on (E_t^g, E_q^g) and the hard alignment A^post,
   whose target span [s, e] is the only part of E_t^g the decoder may attend to.
5. Decoder: l learnable queries, self-attention, cross-attention to E_t^g[s:e], FFN -> E_t^l (B, l, d).
6. Fusion of E_f = [E_t^g; E_t^l] into a per-frame representation, then two heads of three 1-D
   convolutions: foreground logits (B, M) and boundary offsets (B, M, 2).

The choices where the paper is silent are declared below with :func:`matr.choices.declare` (the
report lists them). Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention`
(flash / memory-efficient kernels on a GPU); its parameters carry the names of
``nn.MultiheadAttention``'s, so checkpoints of either load into the other.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import record_function

from matr import choices
from matr.align import AlignmentLoss, HardAlignment, alignment_cost, hard_alignment
from matr.config import MATRConfig, ModelConfig

choices.declare("attention heads", ModelConfig.num_heads, "paper silent; the Transformer / DETR default")
choices.declare("FFN width", ModelConfig.ffn_dim, "paper silent; the DETR / Moment-DETR default")
choices.declare(
    "longest target / query",
    (ModelConfig.max_target_frames, ModelConfig.max_query_frames),
    "frames the model sees: 17 min / 4 min at one frame per 2 s; longer inputs go through matr.inference's windows",
)
choices.declare(
    "projection",
    "Linear-LayerNorm-ReLU-Dropout, Linear-LayerNorm-Dropout",
    "ReLU only between the two layers, so the output can be negative like CLIP features",
)
choices.declare(
    "transformer layers",
    "post-norm, ReLU FFN",
    "the 'standard' Transformer the paper cites",
)
choices.declare(
    "positions",
    "sinusoidal index encoding + learned type embedding (target / query), added to queries and keys only",
    "DETR; the type term lets every encoder layer tell the two videos apart",
)
choices.declare(
    "decoder queries",
    "content starts at zero, the l learned query vectors are the positional term; keys get the target encoding",
    "DETR's decoder",
)
choices.declare(
    "decoder span",
    "A^post of (E_t^g, E_q^g) whenever the decoder is on, even with the post-fusion loss off or method none",
    "the decoder computes the same in every alignment ablation; only the training signal changes",
)
choices.declare(
    "hard-alignment cost",
    "ModelConfig.align_cost for the losses and both A^pre and A^post",
    "the path read at inference is the one the loss trained",
)
choices.declare(
    "fusion of E_f = [E_t^g; E_t^l]",
    ModelConfig.fusion,
    "E_t^g has M rows and E_t^l has l, so the paper's concatenation cannot be row-wise; every frame attends "
    "to the l decoder outputs and the result is concatenated channel-wise (B, M, 2d), reaching frames "
    "outside [s, e] too ('pool': the mean of E_t^l broadcast)",
)
choices.declare(
    "heads",
    "'same'-padded 1-D convolutions, padded frames zeroed before each; offsets = softplus(boundary head)",
    "real frames never see padding; offsets non-negative and smooth, in frame units",
)
choices.declare(
    "when the hard alignments run",
    "A^pre in eval mode only (skipped with heads_only); A^post whenever the decoder is on or in eval mode",
    "A^pre is a dynamic programme that only Table 4 reads",
)
choices.declare(
    "init",
    "Xavier-uniform on every weight matrix / kernel; PyTorch defaults for biases and LayerNorm",
    "DETR",
)


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> Tensor:
    """Fixed sine/cosine encodings (Vaswani et al.) of positions ``0..length-1``: ``(length, dim)``."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


def ground_truth_frames(batch: dict) -> tuple[Tensor, Tensor]:
    """First frame and frame count of each pair's ground-truth moment, from the batch's contiguous,
    never empty ``foreground`` (B, M) 0/1 targets: ``(start (B,), length (B,))``, long."""
    foreground = (batch["foreground"] > 0.5) & batch["target_mask"]
    return foreground.int().argmax(dim=1), foreground.sum(dim=1).clamp(min=1)


def span_memory_mask(start: Tensor, end: Tensor, target_mask: Tensor) -> Tensor:
    """Decoder memory key-padding mask: True (ignored) outside ``[start, end]`` and on padding.

    ``start``, ``end``: (B,) inclusive frame indices; ``target_mask``: (B, M), True = real frame.
    Returns (B, M) bool.
    """
    index = torch.arange(target_mask.shape[1], device=target_mask.device)
    inside = (index >= start.unsqueeze(1)) & (index <= end.unsqueeze(1))
    return ~(inside & target_mask)


class Projection(nn.Module):
    """Two-layer perceptron with LayerNorm and dropout: (..., 512) -> (..., d)."""

    def __init__(self, input_dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_dim, hidden_dim),
            nn.LayerNorm(hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
            nn.LayerNorm(hidden_dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``x (..., input_dim)`` in any float dtype (float16 batches of stored features are converted
        here, on the model's device) -> ``(..., d)``."""
        return self.net(x.to(self.net[0].weight.dtype))


class Attention(nn.Module):
    """Multi-head attention through ``F.scaled_dot_product_attention``.

    Parameters are named and initialised as ``nn.MultiheadAttention``'s (``in_proj_weight``
    (3d, d), ``in_proj_bias``, ``out_proj``), so state dicts of either load into the other.
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """query (B, L, d), key / value (B, S, d), key_padding_mask (B, S) True = ignore -> (B, L, d)."""
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q, k, v = (
            self._split(F.linear(x, w, b)) for x, w, b in ((query, w_q, b_q), (key, w_k, b_k), (value, w_v, b_v))
        )  # (B, h, L|S, d/h)
        mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]  # True = attend
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def _split(self, x: Tensor) -> Tensor:
        """(B, L, d) -> (B, h, L, d / h)."""
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)


def _feed_forward(dim: int, ffn_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))


class EncoderLayer(nn.Module):
    """Post-norm self-attention + FFN; ``pos`` is added to queries and keys only."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads, dropout)
        self.ffn = _feed_forward(dim, ffn_dim, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: Tensor, pos: Tensor, padding: Tensor) -> Tensor:
        """x, pos: (B, M + N, d); padding: (B, M + N) True = ignore. Returns (B, M + N, d)."""
        qk = x + pos
        x = self.norm1(x + self.drop1(self.self_attn(qk, qk, x, padding)))
        return self.norm2(x + self.drop2(self.ffn(x)))


class DecoderLayer(nn.Module):
    """Post-norm self-attention, cross-attention to the target memory, FFN (DETR decoder layer)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads, dropout)
        self.cross_attn = Attention(dim, heads, dropout)
        self.ffn = _feed_forward(dim, ffn_dim, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2, self.drop3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor, memory_mask: Tensor) -> Tensor:
        """x, query_pos: (B, l, d); memory, memory_pos: (B, M, d); memory_mask: (B, M) True = ignore."""
        qk = x + query_pos
        x = self.norm1(x + self.drop1(self.self_attn(qk, qk, x)))
        attended = self.cross_attn(x + query_pos, memory + memory_pos, memory, memory_mask)
        x = self.norm2(x + self.drop2(attended))
        return self.norm3(x + self.drop3(self.ffn(x)))


class ConvHead(nn.Module):
    """``num_layers`` 1-D convolutions over time with ReLU between: (B, M, C_in) -> (B, M, C_out)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int, kernel: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, kernel, padding=kernel // 2) for a, b in pairwise(dims))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x: (B, M, C_in); mask: (B, M) True = real frame (padded frames are zeroed before each conv)."""
        keep = mask.unsqueeze(1)
        h = x.transpose(1, 2)
        for i, conv in enumerate(self.convs):
            h = conv(h.masked_fill(~keep, 0.0))
            if i < len(self.convs) - 1:
                h = F.relu(h)
        return h.transpose(1, 2)


class MATR(nn.Module):
    """The full model; ``forward(batch)`` returns the dict described in ``forward``."""

    def __init__(self, config: ModelConfig | MATRConfig) -> None:
        super().__init__()
        self.config = config.model if isinstance(config, MATRConfig) else config
        cfg, d = self.config, self.config.hidden_dim
        layer_args = (d, cfg.num_heads, cfg.ffn_dim, cfg.transformer_dropout)
        self.projection = Projection(cfg.input_dim, d, cfg.projection_dropout)
        self.type_embed = nn.Parameter(torch.empty(2, d))  # row 0: target, row 1: query
        self.encoder = nn.ModuleList(EncoderLayer(*layer_args) for _ in range(cfg.encoder_layers))
        head_in = d
        if cfg.use_decoder:
            self.query_embed = nn.Parameter(torch.empty(cfg.num_queries, d))  # Q, (l, d)
            self.decoder = nn.ModuleList(DecoderLayer(*layer_args) for _ in range(cfg.decoder_layers))
            if cfg.fusion == "attend":
                self.fusion_attn = Attention(d, cfg.num_heads, cfg.transformer_dropout)
                self.fusion_norm = nn.LayerNorm(d)
            head_in = 2 * d
        self.fg_head = ConvHead(head_in, d, 1, cfg.head_layers, cfg.head_kernel)
        self.boundary_head = ConvHead(head_in, d, 2, cfg.head_layers, cfg.head_kernel)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, batch: dict, *, heads_only: bool = False) -> dict[str, Tensor | HardAlignment | None]:
        """Run MATR on a collated batch (see contracts: "target", "query", masks, lengths).

        Returns ``fg_logits`` (B, M) (meaningless on padded frames), ``offsets`` (B, M, 2)
        non-negative frame units, ``align_pre`` / ``align_post`` (B,) losses or None when
        disabled, ``A_pre`` / ``A_post`` HardAlignment or None when not computed.
        ``heads_only=True`` skips what the heads do not need (both alignment losses and A^pre):
        inference on the heads' outputs.
        """
        cfg = self.config
        target_mask, query_mask = batch["target_mask"], batch["query_mask"]
        lengths = (batch["target_lengths"], batch["query_lengths"])
        self._check_inputs(batch["target"], batch["query"])
        pos_t, pos_q = self._positions(target_mask.shape[1], query_mask.shape[1], target_mask.device)
        et, eq = self.projection(batch["target"]), self.projection(batch["query"])  # (B,M,d), (B,N,d)
        losses = not heads_only
        moment = ground_truth_frames(batch) if losses and cfg.align_span == "moment" else None
        align_pre = (
            self._alignment_loss("matr.align_pre", et, eq, lengths, moment) if losses and cfg.align_pre_active else None
        )
        a_pre = None if self.training or heads_only else self._hard_alignment(et, eq, lengths)
        etg, eqg = self.encode(et, eq, pos_t, pos_q, target_mask, query_mask)
        align_post = (
            self._alignment_loss("matr.align_post", etg, eqg, lengths, moment)
            if losses and cfg.align_post_active
            else None
        )
        a_post = (
            self._hard_alignment(etg, eqg, lengths) if cfg.use_decoder or not (self.training or heads_only) else None
        )
        features = etg
        if cfg.use_decoder:
            etl = self.decode(etg, pos_t, span_memory_mask(a_post.start, a_post.end, target_mask))
            features = self.fuse(etg, etl, pos_t)
        return {
            "fg_logits": self.fg_head(features, target_mask).squeeze(-1),
            "offsets": F.softplus(self.boundary_head(features, target_mask)),
            "align_pre": align_pre,
            "align_post": align_post,
            "A_pre": a_pre,
            "A_post": a_post,
        }

    def encode(
        self, et: Tensor, eq: Tensor, pos_t: Tensor, pos_q: Tensor, target_mask: Tensor, query_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Encoder over E_c = [E_t; E_q]: (B, M, d), (B, N, d) -> E_t^g (B, M, d), E_q^g (B, N, d).

        ``pos_t`` (M, d) / ``pos_q`` (N, d): positional + type terms; masks True = real frame.
        """
        x = torch.cat([et, eq], dim=1)
        pos = torch.cat([pos_t, pos_q], dim=0).unsqueeze(0)
        padding = ~torch.cat([target_mask, query_mask], dim=1)
        for layer in self.encoder:
            x = layer(x, pos, padding)
        return x[:, : et.shape[1]], x[:, et.shape[1] :]

    def decode(self, etg: Tensor, pos_t: Tensor, memory_mask: Tensor) -> Tensor:
        """Decoder: l learnable queries attend to E_t^g where ``memory_mask`` (B, M) is False.

        ``etg`` (B, M, d), ``pos_t`` (M, d). Returns E_t^l (B, l, d).
        """
        query_pos = self.query_embed.unsqueeze(0).expand(etg.shape[0], -1, -1)
        x = torch.zeros_like(query_pos)
        memory_pos = pos_t.unsqueeze(0).expand_as(etg)
        for layer in self.decoder:
            x = layer(x, query_pos, etg, memory_pos, memory_mask)
        return x

    def fuse(self, etg: Tensor, etl: Tensor, pos_t: Tensor) -> Tensor:
        """Query-aligned representation from E_t^g (B, M, d) and E_t^l (B, l, d): (B, M, 2d)."""
        if self.config.fusion == "pool":
            per_frame = etl.mean(dim=1, keepdim=True).expand_as(etg)
        else:
            keys = etl + self.query_embed.unsqueeze(0)
            per_frame = self.fusion_norm(self.fusion_attn(etg + pos_t, keys, etl))
        return torch.cat([etg, per_frame], dim=-1)

    def _positions(self, m: int, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Positional + type terms of target (M, d) and query (N, d) frames."""
        d = self.config.hidden_dim
        return (
            sinusoidal_positions(m, d, device) + self.type_embed[0],
            sinusoidal_positions(n, d, device) + self.type_embed[1],
        )

    def _alignment_loss(
        self,
        label: str,
        et: Tensor,
        eq: Tensor,
        lengths: tuple[Tensor, Tensor],
        moment: tuple[Tensor, Tensor] | None,
    ) -> Tensor:
        cfg = self.config
        loss = AlignmentLoss(cfg.align_method, gamma=cfg.gamma, cost=cfg.align_cost, temperature=cfg.align_temperature)
        with record_function(label):
            return loss(et, eq, *lengths, moment=moment)

    def _hard_alignment(self, et: Tensor, eq: Tensor, lengths: tuple[Tensor, Tensor]) -> HardAlignment:
        cfg = self.config
        with torch.no_grad(), record_function("matr.hard_alignment"):
            cost = alignment_cost(cfg.align_cost, et.detach(), eq.detach(), lengths[0], cfg.align_temperature)
            return hard_alignment(cost, *lengths)

    def _check_inputs(self, target: Tensor, query: Tensor) -> None:
        cfg = self.config
        if target.shape[-1] != cfg.input_dim or query.shape[-1] != cfg.input_dim:
            raise ValueError(
                f"features must have ModelConfig.input_dim={cfg.input_dim} channels, got "
                f"target {tuple(target.shape)} and query {tuple(query.shape)}"
            )
        if target.shape[1] > cfg.max_target_frames:
            raise ValueError(
                f"target has {target.shape[1]} frames > ModelConfig.max_target_frames={cfg.max_target_frames}"
            )
        if query.shape[1] > cfg.max_query_frames:
            raise ValueError(f"query has {query.shape[1]} frames > ModelConfig.max_query_frames={cfg.max_query_frames}")
