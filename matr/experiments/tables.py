"""The paper's Tables 1-5 as data: their rows, the orderings the paper claims, and the paper's numbers.

A :class:`TableSpec` lists its rows (:class:`RowSpec`: one variant or baseline read from one
prediction source, with the fields that match it to the paper's row in ``reported_results.json``)
and its :class:`Claim` s: each ordering the paper states between two rows, which
:mod:`matr.experiments.results` tests with a paired bootstrap. Our metric columns, the paper's
columns and :func:`paper_row` live here once; the report imports them. The kit adds one table the
paper does not have, ``query_use``: each trained model with its own query and with that of a pair
of another class (:func:`matr.experiments.evaluation.other_class_queries`); it has no paper numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from matr.choices import declare
from matr.experiments.evaluation import BASELINES, MODEL_SOURCES, QUERIES
from matr.experiments.variants import VARIANTS, get_variant

METRIC_COLUMNS: tuple[str, ...] = ("mIoU", "R1@0.5", "R1@0.3", "R1@0.7", "R5@0.5", "VRL_IoU_mean")
"""Our metrics in the order tables show them (names of :data:`matr.metrics.METRIC_DESCRIPTIONS`)."""
PAPER_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        "AN_mIoU": "paper AN mIoU",
        "AN_R1": "paper AN R1@0.5",
        "SM_mIoU": "paper SM mIoU",
        "SM_R1": "paper SM R1@0.5",
    }
)
"""The paper's columns (ActivityNet-VRL, SportsMoments) -> their labels."""
PAPER_METRIC: Mapping[str, str] = MappingProxyType(
    {"AN_mIoU": "mIoU", "AN_R1": "R1@0.5", "SM_mIoU": "mIoU", "SM_R1": "R1@0.5"}
)
"""The paper's column -> our metric it compares with."""
CLAIM_METRIC = declare(
    "metric of the claimed orderings", "R1@0.5", "the paper's headline metric (its R1 columns are R@1 at IoU 0.5)"
)
TABLE5_SHORTCUT = declare(
    "Table 5 training",
    "from random init",
    "to save compute; its soft-DTW row is the run without pre-training, whereas the paper's is its pre-trained model",
)


@dataclass(frozen=True)
class RowSpec:
    """One row: ``method`` (a variant or baseline) read from ``source``; ``match``: the paper's fields.

    ``queries``: ``"own"``, or ``"other"`` for each pair's query swapped with another class's.
    """

    label: str
    method: str
    match: tuple[tuple[str, Any], ...]
    source: str = "heads"
    queries: str = "own"

    def __post_init__(self) -> None:
        if self.method not in VARIANTS and self.method not in BASELINES:
            raise ValueError(f"row {self.label!r}: {self.method!r} is neither a variant nor a baseline")
        if self.queries not in QUERIES:
            raise ValueError(f"row {self.label!r}: unknown queries {self.queries!r}; expected one of {QUERIES}")
        if self.method in VARIANTS and self.source not in MODEL_SOURCES:
            raise ValueError(f"row {self.label!r}: unknown source {self.source!r}; expected one of {MODEL_SOURCES}")
        if self.method in BASELINES:  # a baseline has one source, named after it
            object.__setattr__(self, "source", self.method)


@dataclass(frozen=True)
class Claim:
    """An ordering the paper claims: row ``a`` scores higher than row ``b`` (``sign`` -1: lower) on ``metric``."""

    text: str
    a: str
    b: str
    metric: str = CLAIM_METRIC
    sign: int = 1


@dataclass(frozen=True)
class TableSpec:
    """A table: its key (in ``reported_results.json`` when the paper has it), how to show it, its rows and claims."""

    key: str
    title: str
    caption: str
    paper_match: tuple[str, ...]
    rows: tuple[RowSpec, ...]
    claims: tuple[Claim, ...] = ()

    def __post_init__(self) -> None:
        labels = [row.label for row in self.rows]
        for claim in self.claims:
            if claim.a not in labels or claim.b not in labels or claim.metric not in METRIC_COLUMNS:
                raise ValueError(f"table {self.key!r}: claim {claim.text!r} names an unknown row or metric")

    @property
    def methods(self) -> list[str]:
        """The variants and baselines of the rows, in order, without repeats."""
        return list(dict.fromkeys(row.method for row in self.rows))

    @property
    def variants(self) -> list[str]:
        """The variants the table needs trained."""
        return [method for method in self.methods if method in VARIANTS]

    def row(self, label: str) -> RowSpec:
        """The row called ``label``."""
        return next(row for row in self.rows if row.label == label)


def _mv(method: str, variant: str) -> tuple[tuple[str, Any], ...]:
    return (("method", method), ("variant", variant))


def _prepost(pre: bool, post: bool) -> tuple[tuple[str, Any], ...]:
    return (("pre_fusion", pre), ("post_fusion", post))


def _order(*labels: str) -> tuple[Claim, ...]:
    """Claims that each label scores higher than the next."""
    return tuple(Claim(f"{a} > {b}", a, b) for a, b in zip(labels, labels[1:]))


def _query_swap(label: str, method: str) -> tuple[tuple[RowSpec, RowSpec], Claim]:
    """Rows of ``method`` with its own query and with another class's, and the claim that the first scores higher."""
    own, other = f"{label}, own query", f"{label}, other-class query"
    rows = (RowSpec(own, method, ()), RowSpec(other, method, (), queries="other"))
    return rows, Claim(f"{own} > {other}", own, other)


_TEST = (
    "Ours: the test split, whose classes are unseen in training; metrics in percent, as "
    "matr.metrics computes them (no adjustment), with 95% bootstrap intervals over pairs (and seeds)."
)
_RANDOM, _VM, _ENC = "Random", "Video Match", "Encoder only, no alignment, no decoder (Trained+V)"
_ZS, _TV, _FV = (
    "MATR zero-shot (pre-trained only)",
    "MATR Trained+V (no pre-training)",
    "MATR Finetuned+V (pre-trained, finetuned)",
)
_SWAPS = [
    _query_swap(label, method)
    for label, method in (
        (_VM, "video_match"),
        ("Encoder only (Trained+V)", "encoder_only"),
        ("MATR Trained+V", "scratch"),
        ("MATR Finetuned+V", "finetuned"),
    )
]
TABLES: Mapping[str, TableSpec] = MappingProxyType(
    {
        t.key: t
        for t in (
            TableSpec(
                "table1_main",
                "Table 1: MATR against the baselines",
                "Random and Video Match are the training-free baselines of Feng et al. (matr.baselines). MATR "
                "zero-shot is the self-supervised pre-training checkpoint alone; Trained+V starts from random init; "
                "Finetuned+V is pre-trained (with augmentation) then finetuned. The encoder-only model (no "
                "alignment, no decoder, trained from scratch) stands in for the text-VMR methods' video-query "
                "variant (d) Trained+V, which the kit does not re-implement (nor the VLM and image-VMR rows). " + _TEST,
                ("method", "variant"),
                (
                    RowSpec(_RANDOM, "random", _mv("Random", "-")),
                    RowSpec(_VM, "video_match", _mv("Video Match", "-")),
                    RowSpec(_ENC, "encoder_only", _mv("MATR encoder only", "Trained+V")),
                    RowSpec(_ZS, "zero_shot", _mv("MATR", "Zero-shot")),
                    RowSpec(_TV, "scratch", _mv("MATR", "Trained+V")),
                    RowSpec(_FV, "finetuned", _mv("MATR", "Finetuned+V")),
                ),
                (*_order(_FV, _TV, _ENC), *_order(_VM, _RANDOM), Claim(f"{_TV} > {_VM}", _TV, _VM)),
            ),
            TableSpec(
                "table2_dual_alignment",
                "Table 2: dual-stage alignment",
                "The soft-DTW alignment loss on the projected features (pre-fusion) and on the encoder's outputs "
                "(post-fusion), switched off one at a time (model.align_pre, model.align_post). Every run "
                "starts from random init, as in the paper. " + _TEST,
                ("pre_fusion", "post_fusion"),
                (
                    RowSpec("neither stage", "no_align", _prepost(False, False)),
                    RowSpec("post-fusion only", "no_pre", _prepost(False, True)),
                    RowSpec("pre-fusion only", "no_post", _prepost(True, False)),
                    RowSpec("both stages (MATR)", "scratch", _prepost(True, True)),
                ),
                (
                    *_order("both stages (MATR)", "post-fusion only", "neither stage"),
                    *_order("both stages (MATR)", "pre-fusion only", "neither stage"),
                ),
            ),
            TableSpec(
                "table3_pretraining",
                "Table 3: self-supervised pre-training and its augmentation",
                "MATR finetuned from random init, from pre-training without augmented queries, and from "
                "pre-training with them (reverse, noise, slow, fast; matr.data.pretraining). Pre-training uses "
                "the training split's target videos (the paper adds Kinetics-700). " + _TEST,
                ("pretraining", "augmentation"),
                (
                    RowSpec("no pre-training", "scratch", (("pretraining", False), ("augmentation", None))),
                    RowSpec(
                        "pre-training, no augmentation",
                        "pretrained_noaug",
                        (("pretraining", True), ("augmentation", False)),
                    ),
                    RowSpec(
                        "pre-training with augmentation", "finetuned", (("pretraining", True), ("augmentation", True))
                    ),
                ),
                _order("pre-training with augmentation", "pre-training, no augmentation", "no pre-training"),
            ),
            TableSpec(
                "table4_heads_vs_alignment",
                "Table 4: predicting from the heads or from the alignment matrices",
                "One model, the full MATR (pre-trained, finetuned), read three ways: the target span covered by the "
                "hard alignment path A_pre or A_post (one prediction per pair), or the prediction heads after "
                "NMS. " + _TEST,
                ("predict_from",),
                (
                    RowSpec("span of A_pre", "finetuned", (("predict_from", "pre-fusion alignment (A_pre)"),), "A_pre"),
                    RowSpec(
                        "span of A_post", "finetuned", (("predict_from", "post-fusion alignment (A_post)"),), "A_post"
                    ),
                    RowSpec("prediction heads", "finetuned", (("predict_from", "prediction heads"),), "heads"),
                ),
                _order("prediction heads", "span of A_post", "span of A_pre"),
            ),
            TableSpec(
                "table5_alignment_methods",
                "Table 5: alignment methods",
                "The alignment loss at both stages: none, TCC, Drop-DTW or soft-DTW (model.align_method). To save "
                "compute every run here starts from random init: 'None' is the run without alignment of Table 2 "
                "and soft-DTW the run without pre-training of Tables 2 and 3, whereas the paper's soft-DTW row is "
                "its full pre-trained model. " + _TEST,
                ("alignment",),
                (
                    RowSpec("None", "no_align", (("alignment", "None"),)),
                    RowSpec("TCC", "tcc", (("alignment", "TCC"),)),
                    RowSpec("Drop-DTW", "drop_dtw", (("alignment", "Drop-DTW"),)),
                    RowSpec("soft-DTW", "scratch", (("alignment", "soft-DTW"),)),
                ),
                _order("soft-DTW", "Drop-DTW", "TCC", "None"),
            ),
            TableSpec(
                "query_use",
                "Does the model use the query?",
                "Not in the paper: a check of this kit. Each method of Table 1 that reads a query, evaluated on the "
                "same test pairs twice: with each pair's own query, and with the query of a test pair of another "
                "action class (drawn with the profile's seed; target and ground truth unchanged; "
                "matr.experiments.evaluation.other_class_queries). A model that uses its query should lose most of "
                "its score with another class's; one that scores as well localises query-agnostic events. MATR rows: "
                "the prediction heads. " + _TEST,
                (),
                tuple(row for rows, _ in _SWAPS for row in rows),
                tuple(claim for _, claim in _SWAPS),
            ),
        )
    }
)


def get_table(key: str) -> TableSpec:
    """The table ``key`` of :data:`TABLES` (a key of ``reported_results.json``)."""
    if key not in TABLES:
        raise ValueError(f"unknown table {key!r}; expected one of {sorted(TABLES)}")
    return TABLES[key]


def run_labels(names: str | Sequence[str]) -> dict[str, str]:
    """Variant -> the label its curves and spans carry: a table's row labels (``names`` a table key), or for a
    list of variants their Table 1 row label, else their description (the first label of a repeated variant wins)."""
    if isinstance(names, str):
        rows = [(row.method, row.label) for row in get_table(names).rows if row.method in VARIANTS]
    else:
        table1 = {row.method: row.label for row in reversed(get_table("table1_main").rows)}
        rows = [(name, table1.get(name, get_variant(name).description)) for name in names]
    labels: dict[str, str] = {}
    for method, label in rows:
        labels.setdefault(method, label)
    return labels


def paper_claim(spec: TableSpec, claim: Claim) -> str:
    """The claim as a sentence with the paper's numbers, e.g. ``"a > b (paper SM R1@0.5: 52.7 vs 46.6)"``."""
    paper = paper_rows(spec.key)
    rows = [
        paper_row({"label": x, **dict(spec.row(x).match)}, paper, spec.paper_match) or {} for x in (claim.a, claim.b)
    ]
    for column, metric in PAPER_METRIC.items():
        values = [row.get(column) for row in rows]
        if metric == claim.metric and None not in values and column.startswith("SM"):
            return f"{claim.text} (paper {PAPER_COLUMNS[column].removeprefix('paper ')}: {values[0]} vs {values[1]})"
    return claim.text


@cache
def _reported() -> str:
    return resources.files("matr").joinpath("resources/reported_results.json").read_text("utf-8")


def reported_results() -> dict[str, Any]:
    """The paper's numbers (``matr/resources/reported_results.json``), keyed by table."""
    return json.loads(_reported())


def paper_rows(key: str) -> list[dict[str, Any]]:
    """The paper's rows of table ``key`` (none for a table of the kit's own, such as ``query_use``)."""
    return reported_results().get(key, [])


def paper_row(
    row: Mapping[str, Any], paper_rows: Sequence[Mapping[str, Any]], fields: Sequence[str]
) -> Mapping[str, Any] | None:
    """The paper's row whose ``fields`` all equal ``row``'s (None if there is none or ``fields`` is empty)."""
    hits = [paper for paper in paper_rows if fields and all(paper.get(name, object()) == row[name] for name in fields)]
    if len(hits) > 1:
        raise ValueError(f"row {row['label']!r} matches {len(hits)} rows of the paper on {list(fields)}")
    return hits[0] if hits else None
