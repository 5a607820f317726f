"""Model and loss configuration of MATR (paper section 3.2 and 5.2), with presets as data.

``MATRConfig`` holds a ``ModelConfig`` (architecture, alignment) and a ``LossConfig`` (the
paper's lambdas). Presets:

* ``paper``: the settings of section 5.2 (d = 1024, k = 4 encoder and 4 decoder layers,
  l = 10 decoder queries, dropout 0.1 in the transformer and 0.5 in the projection, all
  lambdas 1). Where the paper is silent the value is ours, declared as a choice on its field.
* ``demo``: the same architecture at d = 256 with 2 + 2 layers; trains on a CPU.
* ``smoke``: d = 64, one encoder and one decoder layer; for unit tests and CI.

``to_dict`` / ``from_dict`` round-trip through plain JSON-able dicts (checkpoints store them);
unknown keys and invalid values raise ``ValueError`` naming the field. :func:`from_mapping` is the
one place that builds any config dataclass from a mapping and rejects unknown keys; every config
read from data (presets, run profiles, checkpoints) goes through it. Choices where the paper is
silent are declared with :func:`matr.choices.declare` on the field they set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from matr.choices import declare

AlignMethod = Literal["soft_dtw", "drop_dtw", "tcc", "none"]
AlignCost = Literal["cosine", "contrastive"]
AlignSpan = Literal["subsequence", "moment"]
Fusion = Literal["attend", "pool"]

ALIGN_METHODS: tuple[str, ...] = ("soft_dtw", "drop_dtw", "tcc", "none")
ALIGN_COSTS: tuple[str, ...] = ("cosine", "contrastive")  # matr.align.COSTS
ALIGN_SPANS: tuple[str, ...] = ("subsequence", "moment")
FUSIONS: tuple[str, ...] = ("attend", "pool")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of MATR. Letters follow the paper: d, k, l."""

    input_dim: int = 512  # CLIP ViT-B/32 embedding size (paper 3.2)
    hidden_dim: int = 1024  # d (paper 5.2)
    num_heads: int = declare("attention heads", 8, "the Transformer / DETR default")
    ffn_dim: int = declare("feed-forward width", 2048, "the DETR / Moment-DETR default")
    encoder_layers: int = 4  # k (paper 5.2)
    decoder_layers: int = 4  # the paper's decoder also has k layers
    num_queries: int = 10  # l (paper 5.2)
    transformer_dropout: float = 0.1  # paper 5.2
    projection_dropout: float = 0.5  # paper 5.2
    head_layers: int = 3  # c = 3 convolutions per prediction head (paper 3.2)
    head_kernel: int = 3  # 1 x 3 kernels (paper 3.2)
    max_target_frames: int = declare("longest target (frames)", 512, "17 min at one frame per 2 s")
    max_query_frames: int = declare("longest query (frames)", 128, "4 min at one frame per 2 s")
    use_decoder: bool = True  # ablation: decoder off -> heads see E_t^g only
    fusion: Fusion = declare(
        "fusion of E_t^g and E_t^l",
        "attend",
        "every target frame attends to the l decoder outputs, concatenated channel-wise with E_t^g (matr.model)",
    )
    align_method: AlignMethod = "soft_dtw"  # Table 5: none / tcc / drop_dtw / soft_dtw
    align_pre: bool = True  # Table 2: pre-fusion alignment loss on (E_t, E_q)
    align_post: bool = True  # Table 2: post-fusion alignment loss on (E_t^g, E_q^g)
    gamma: float = declare("soft-DTW smoothing gamma", 0.1, "the paper: 'selected empirically', no value given")
    # Cost of the DTW losses and of the hard alignments A^pre / A^post (decoder span). "cosine" is the
    # paper's 1 - cos; "contrastive" (ours, matr.align.costs) avoids the collapse of soft-DTW on it.
    align_cost: AlignCost = "cosine"
    align_temperature: float = declare(
        "contrastive cost temperature", 0.1, "softmax temperature of our contrastive cost (the paper has no such cost)"
    )
    # Target frames the alignment losses align the query with. "subsequence" is the paper's: any
    # contiguous part of the target (the soft minimum over spans). "moment" (ours): the ground-truth
    # moment's frames only, each aligned (full DTW), so a loss cannot be met by one target frame
    # that matches every query frame whatever the content (matr.align.AlignmentLoss).
    align_span: AlignSpan = "subsequence"

    def __post_init__(self) -> None:
        _check_positive(
            self,
            (
                "input_dim",
                "hidden_dim",
                "num_heads",
                "ffn_dim",
                "encoder_layers",
                "num_queries",
                "head_layers",
                "head_kernel",
                "max_target_frames",
                "max_query_frames",
            ),
        )
        _check_choice(self, "fusion", FUSIONS)
        _check_choice(self, "align_method", ALIGN_METHODS)
        _check_choice(self, "align_cost", ALIGN_COSTS)
        _check_choice(self, "align_span", ALIGN_SPANS)
        if self.decoder_layers < 0:
            raise ValueError(f"ModelConfig.decoder_layers must be >= 0, got {self.decoder_layers}")
        if self.use_decoder and self.decoder_layers == 0:
            raise ValueError("ModelConfig.decoder_layers is 0 but use_decoder is True")
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"ModelConfig.hidden_dim ({self.hidden_dim}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.head_kernel % 2 == 0:
            raise ValueError(f"ModelConfig.head_kernel must be odd ('same' padding), got {self.head_kernel}")
        for name in ("transformer_dropout", "projection_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"ModelConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("gamma", "align_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ModelConfig.{name} must be > 0, got {getattr(self, name)}")

    @property
    def align_pre_active(self) -> bool:
        """Whether the pre-fusion alignment loss is computed."""
        return self.align_pre and self.align_method != "none"

    @property
    def align_post_active(self) -> bool:
        """Whether the post-fusion alignment loss is computed."""
        return self.align_post and self.align_method != "none"


@dataclass(frozen=True)
class LossConfig:
    """The lambdas of the overall loss (paper 3.2; all 1 in 5.2) and the smooth-L1 threshold."""

    fg: float = 1.0  # lambda_fg, foreground BCE
    l1: float = 1.0  # lambda_L1, smooth-L1 on boundary offsets
    giou: float = 1.0  # lambda_IoU, generalised IoU on boundary offsets
    align_pre: float = 1.0  # lambda_align^pre
    align_post: float = 1.0  # lambda_align^post
    smooth_l1_beta: float = declare("smooth-L1 beta", 1.0, "the PyTorch default, in frame units")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"LossConfig.{f.name} must be >= 0, got {getattr(self, f.name)}")
        if self.smooth_l1_beta == 0:
            raise ValueError("LossConfig.smooth_l1_beta must be > 0")


@dataclass(frozen=True)
class MATRConfig:
    """Everything that defines a MATR model and its training objective."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (JSON-able)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MATRConfig:
        """Inverse of ``to_dict``; missing keys take their defaults, unknown keys raise."""
        _reject_unknown(cls, data)
        return cls(
            model=from_mapping(ModelConfig, data.get("model", {})), loss=from_mapping(LossConfig, data.get("loss", {}))
        )


PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {},
    "demo": {"model": {"hidden_dim": 256, "ffn_dim": 512, "encoder_layers": 2, "decoder_layers": 2}},
    "smoke": {
        "model": {
            "hidden_dim": 64,
            "num_heads": 4,
            "ffn_dim": 128,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "num_queries": 4,
            "max_target_frames": 256,
            "max_query_frames": 64,
        }
    },
}


def preset(name: str) -> MATRConfig:
    """The named preset (``paper``, ``demo`` or ``smoke``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return MATRConfig.from_dict(PRESETS[name])


def override(config: MATRConfig, updates: Mapping[str, Any]) -> MATRConfig:
    """A copy of ``config`` with dotted-key updates, e.g. ``{"model.use_decoder": False}``."""
    data = config.to_dict()
    for key, value in updates.items():
        section, _, name = key.partition(".")
        if section not in data or name not in data[section]:
            raise ValueError(f"unknown config key {key!r}; expected 'model.<field>' or 'loss.<field>'")
        data[section][name] = value
    return MATRConfig.from_dict(data)


_T = TypeVar("_T")


def from_mapping(cls: type[_T], data: Mapping[str, Any]) -> _T:
    """``cls(**data)`` for a config dataclass ``cls``; keys that are not fields raise ``ValueError`` listing them."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__} expects a mapping, got {type(data).__name__}")
    _reject_unknown(cls, data)
    return cls(**data)


def _reject_unknown(cls: type, data: Mapping[str, Any]) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; known keys: {sorted(known)}")


def _check_positive(obj: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{type(obj).__name__}.{name} must be a positive int, got {value!r}")


def _check_choice(obj: object, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    if value not in choices:
        raise ValueError(f"{type(obj).__name__}.{name} must be one of {choices}, got {value!r}")
