"""One object to try MATR from Python: ``model = matr.load(checkpoint)``, then ``model.localize(query, target)``.

A :class:`Model` holds a trained MATR network and the frozen CLIP image encoder whose features it
was trained on; the checkpoint's backbone tag (``random-init(seed=0)``, ``openai``, ...) decides
which encoder is built, so a random-init checkpoint (the shipped demo) needs no download. The
methods take video files and return ranked moments in seconds, best first::

    import matr

    model = matr.load("examples/demo_checkpoint.pt")
    found = model.localize("examples/query.mp4", "examples/target.mp4")
    found.moments            # [RankedSpan(start=..., end=..., score=...), ...]
    hits = model.search("examples/query.mp4", "my_videos/")   # a folder, encoded once into a store

The work is done by :mod:`matr.inference` (windows over long targets, NMS, feature stores); this
module adds nothing but the object that remembers the checkpoint's clip length and backbone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from matr.inference import Localization, SearchResult, load_for_inference, localize_videos, search_videos

if TYPE_CHECKING:
    from matr.features import ClipEncoder

DEFAULT_CLIP_LENGTH = 2.0  # seconds per frame (paper 3.2), for checkpoints that do not record theirs


@dataclass
class Model:
    """A MATR checkpoint ready for inference on video files.

    ``network``: the MATR module (eval mode); ``encoder``: the CLIP image encoder matching the
    checkpoint's features; ``info``: the checkpoint's run record (``weights_tag``, ``clip_length``, ...).
    """

    checkpoint: Path
    network: nn.Module
    encoder: ClipEncoder
    info: dict[str, Any]

    @property
    def clip_length(self) -> float:
        """Seconds per sampled frame, as in training."""
        return float(self.info.get("clip_length") or DEFAULT_CLIP_LENGTH)

    @property
    def weights_tag(self) -> str:
        """The CLIP backbone's weights tag (``random-init(seed=0)``, ``openai``, ``file:<sha>``)."""
        return self.encoder.weights_tag

    def localize(self, query: str | os.PathLike, target: str | os.PathLike, **options: Any) -> Localization:
        """The ranked moments (seconds, best first) of the ``query`` clip in the ``target`` video.

        ``options`` (keywords of :func:`matr.inference.localize_videos`): ``top_k`` (default 5),
        ``query_start`` / ``query_end`` (seconds: use only part of the query video), ``nms_threshold``.
        """
        _require_file(query, "query")
        _require_file(target, "target")
        return localize_videos(self.network, self.encoder, query, target, clip_length=self.clip_length, **options)

    def search(self, query: str | os.PathLike, folder: str | os.PathLike, **options: Any) -> SearchResult:
        """The ranked moments of ``query`` across the videos under ``folder`` (or in a feature store).

        A folder's videos are encoded once into a feature store (``store``, default
        ``folder/.matr-features``); a later search decodes only the query. ``options`` (keywords of
        :func:`matr.inference.search_videos`): ``store``, ``top_k`` (default 10), ``per_video``
        (default 3: at most this many moments per video), ``query_start`` / ``query_end``,
        ``nms_threshold``, ``progress``.
        """
        _require_file(query, "query")
        return search_videos(self.network, self.encoder, query, folder, clip_length=self.clip_length, **options)


def load(
    checkpoint: str | os.PathLike, *, device: str | None = None, weights: str | None = None, seed: int | None = None
) -> Model:
    """Load a MATR checkpoint and the CLIP encoder its backbone tag names.

    ``device``: ``cpu``, ``cuda``, ... (default: a GPU if there is one). ``weights`` / ``seed``
    override the backbone (``openai``, ``random``, a CLIP checkpoint file); by default the
    checkpoint's recorded tag is rebuilt, and a mismatching override raises ``ValueError``.
    """
    network, encoder, info = load_for_inference(checkpoint, weights=weights, seed=seed, device=device)
    return Model(Path(checkpoint), network, encoder, info)


def _require_file(path: str | os.PathLike, what: str) -> None:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} video {path} does not exist")
