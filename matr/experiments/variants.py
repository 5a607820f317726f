"""The runs behind the paper's tables (section 5), as data: each :class:`Variant` is one way of training MATR.

A variant says which training stage it runs (self-supervised pre-training, paper 3.3, or supervised
finetuning), which run initialises it, and which config switches of :mod:`matr.config` (dotted
``overrides``) or of the pre-training pairs (``pretraining``) it flips. ``pretrain`` and
``pretrain_noaug`` are shared by every variant that starts from them; ``zero_shot`` trains nothing
and is evaluated from its ``init`` run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from matr.choices import declare

Stage = Literal["pretrain", "finetune"]


@dataclass(frozen=True)
class Variant:
    """One way of training MATR. ``stage`` None: no training, the ``init`` run's checkpoint is evaluated."""

    name: str
    description: str
    stage: Stage | None = "finetune"
    init: str | None = None  # the pre-training variant whose last checkpoint initialises this one
    overrides: tuple[tuple[str, Any], ...] = ()  # dotted matr.config.override keys
    pretraining: tuple[tuple[str, Any], ...] = ()  # PretrainConfig fields (pre-training stage only)
    validate: bool = False  # validate every epoch (the runs shown as training curves)
    ablation: bool = False  # only the ablation tables (2-5) use it: trained with the profile's ablation_seeds

    def __post_init__(self) -> None:
        if self.stage is None and self.init is None:
            raise ValueError(f"variant {self.name!r} is neither trained nor initialised from a run")
        if self.init is not None and self.overrides:
            raise ValueError(
                f"variant {self.name!r}: a pre-training run fixes the model, so a variant initialised from "
                "one cannot override it"
            )
        if self.pretraining and self.stage != "pretrain":
            raise ValueError(f"variant {self.name!r}: pre-training settings need stage 'pretrain'")

    @property
    def trained(self) -> bool:
        """Whether the variant has a training run of its own."""
        return self.stage is not None


VALIDATED_RUNS = declare(
    "validation during training",
    ("finetuned", "scratch"),
    "only the runs shown as training curves validate every epoch; the ablations train without validation",
)
ENCODER_ONLY = declare(
    "Table 1 text-VMR stand-in",
    "encoder_only",
    "MATR's projection, encoder and heads without alignment losses or decoder, trained from scratch on video "
    "queries, stands in for the text-VMR methods' variant (d) Trained+V, which the kit does not re-implement",
)
_NO_ALIGNMENT = (("model.align_pre", False), ("model.align_post", False))

VARIANTS: Mapping[str, Variant] = MappingProxyType(
    {
        v.name: v
        for v in (
            Variant("pretrain", "self-supervised pre-training with augmented queries", stage="pretrain"),
            Variant(
                "pretrain_noaug",
                "self-supervised pre-training without augmentation",
                stage="pretrain",
                pretraining=(("augment", False),),
                ablation=True,
            ),
            Variant(
                "finetuned",
                "pre-trained with augmentation, then finetuned; both alignments (the full MATR)",
                init="pretrain",
                validate="finetuned" in VALIDATED_RUNS,
            ),
            Variant("scratch", "finetuned from random init; both alignments", validate="scratch" in VALIDATED_RUNS),
            Variant("zero_shot", "pre-trained with augmentation only, never finetuned", stage=None, init="pretrain"),
            Variant(
                "pretrained_noaug",
                "pre-trained without augmentation, then finetuned",
                init="pretrain_noaug",
                ablation=True,
            ),
            Variant(
                "no_pre",
                "from random init, no pre-fusion alignment loss",
                overrides=(("model.align_pre", False),),
                ablation=True,
            ),
            Variant(
                "no_post",
                "from random init, no post-fusion alignment loss",
                overrides=(("model.align_post", False),),
                ablation=True,
            ),
            Variant(
                "no_align",
                "from random init, no alignment loss at either stage",
                overrides=_NO_ALIGNMENT,
                ablation=True,
            ),
            Variant(
                "tcc",
                "from random init, TCC alignment losses",
                overrides=(("model.align_method", "tcc"),),
                ablation=True,
            ),
            Variant(
                "drop_dtw",
                "from random init, Drop-DTW alignment losses",
                overrides=(("model.align_method", "drop_dtw"),),
                ablation=True,
            ),
            Variant(
                ENCODER_ONLY,
                "from random init, no alignment and no decoder (stand-in for text-VMR, video query)",
                overrides=(("model.align_method", "none"), ("model.use_decoder", False)),
            ),
        )
    }
)
PRETRAINING_RUNS: tuple[str, ...] = tuple(name for name, v in VARIANTS.items() if v.stage == "pretrain")


def get_variant(name: str) -> Variant:
    """The variant called ``name``; unknown names raise ``ValueError`` listing the known ones."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; expected one of {sorted(VARIANTS)}")
    return VARIANTS[name]


def _check_inits() -> None:
    for variant in VARIANTS.values():
        if variant.init is not None and get_variant(variant.init).stage != "pretrain":
            raise ValueError(f"variant {variant.name!r}: init {variant.init!r} is not a pre-training variant")


_check_inits()
