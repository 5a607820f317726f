"""The frozen CLIP ViT-B/32 image encoder (open_clip): weights, preprocessing, encoding, network probe.

The paper encodes one frame every 2 s with frozen CLIP ViT-B/32 and feeds the 512-d embeddings to
a projection MLP; what it leaves open is declared below with :func:`matr.choices.declare`.

Weights are ``"openai"`` (open_clip's download and cache), a local checkpoint file (open_clip
state dict, ``.safetensors`` or a ``torch.save`` file loaded with ``weights_only=True``), or
``"random"`` (seeded random init for offline demos and CI). Every encoder carries a *weights tag*
(``"openai"``, ``"file:<sha256 prefix>"``, ``"random-init(seed=0)"``) that is written next to every
feature it produces, so random features can never pass for real ones (:func:`is_random_init`). The
tag is known before the network is built; ``lazy=True`` builds it on first use, so a command whose
features are all cached never pays for it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from matr.choices import declare
from matr.device import resolve_device
from matr.provenance import RANDOM_INIT_PREFIX

BACKBONE = declare(
    "CLIP architecture",
    "ViT-B-32-quickgelu",
    "OpenAI's ViT-B/32 uses QuickGELU; open_clip's plain ViT-B-32 would run its weights with the wrong activation",
)
declare(
    "CLIP preprocessing",
    "the model's eval transform (shorter side 224 bicubic, centre crop, OpenAI mean/std) on full-resolution RGB",
    "the transform CLIP was trained with",
)
declare(
    "CLIP feature",
    "raw image embedding after CLIP's projection, not L2-normalised",
    "MATR compares features by cosine; normalising is one line downstream",
)
declare(
    "CLIP inference precision",
    "bf16 autocast on GPUs that support it (fp16 otherwise), fp32 on CPU",
    "the paper does not say; reduced precision on GPUs is faster and the store keeps float16 anyway",
)
FEATURE_DIM = 512
OPENAI_HF_REPO = "timm/vit_base_patch32_clip_224.openai"
_OPENAI_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_DOWNLOAD_HOST = "huggingface.co"
_PROBE_TIMEOUT_S = 3.0

Builder = Callable[[], tuple[nn.Module, Callable[[Image.Image], Tensor]]]


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were asked for but cannot be found locally or downloaded."""


def download_host_reachable(host: str = _DOWNLOAD_HOST, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``host:443`` opens within ``timeout`` seconds (DNS included).

    ``HF_HUB_OFFLINE=1`` answers ``False`` without touching the network.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return False

    answers: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            answers.append(True)
        except OSError:
            answers.append(False)

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(answers and answers[0])


class ClipEncoder:
    """Frozen CLIP image tower with its preprocessing, built on first use; ``weights_tag`` says which weights."""

    def __init__(self, build: Builder, weights_tag: str, device: torch.device):
        self.weights_tag = weights_tag
        self.device = device
        self.backbone = BACKBONE
        self.feature_dim = FEATURE_DIM
        self._build = build
        self._parts: tuple[nn.Module, Callable[[Image.Image], Tensor]] | None = None

    @property
    def built(self) -> bool:
        """Whether the network has been built (and its weights loaded)."""
        return self._parts is not None

    @property
    def visual(self) -> nn.Module:
        """The image tower, in eval mode and without gradients, on ``device``."""
        return self._ensure()[0]

    @property
    def preprocess(self) -> Callable[[Image.Image], Tensor]:
        """PIL image -> ``(3, 224, 224)`` tensor, CLIP's eval transform."""
        return self._ensure()[1]

    def build(self) -> ClipEncoder:
        """Build the network and load its weights now (a no-op once built); returns ``self``."""
        self._ensure()
        return self

    def _ensure(self) -> tuple[nn.Module, Callable[[Image.Image], Tensor]]:
        if self._parts is None:
            model, preprocess = self._build()
            self._parts = (model.visual.to(self.device).eval().requires_grad_(False), preprocess)
        return self._parts

    @torch.inference_mode()
    def embed(self, images: Tensor) -> Tensor:
        """Preprocessed images ``(B, 3, 224, 224)`` -> raw CLIP embeddings ``(B, 512)`` float32 on CPU."""
        visual = self.visual
        images = images.to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            with torch.autocast("cuda", dtype=dtype):
                embeddings = visual(images)
        else:
            embeddings = visual(images)
        return embeddings.float().cpu()


def load_clip_encoder(
    weights: str | os.PathLike = "openai",
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
    lazy: bool = False,
    download_available: Callable[[], bool] = download_host_reachable,
) -> ClipEncoder:
    """The frozen CLIP ViT-B/32 image encoder on ``device`` (resolved by :func:`matr.device.resolve_device`).

    ``weights``: ``"openai"`` (from the Hugging Face cache, else downloaded), ``"random"`` (seeded
    with ``seed``), or a path to a checkpoint file. When the OpenAI weights are not cached and
    ``download_available()`` is false, raises :class:`WeightsUnavailableError` at once, explaining
    how to provide weights, instead of letting the download retry for a minute. ``lazy``: build the
    network on first use instead of now (errors about the weights then come at first use too).
    """
    device = resolve_device(device)
    if str(weights) == "random":
        build: Builder = partial(_random_model, seed)
        tag = f"{RANDOM_INIT_PREFIX}(seed={seed})"
    elif str(weights) == "openai":
        build, tag = partial(_load_openai, download_available), "openai"
    elif Path(weights).is_file():
        build, tag = partial(_load_checkpoint, Path(weights)), f"file:{_sha256(Path(weights))[:12]}"
    else:
        raise ValueError(f"weights must be 'openai', 'random' or a checkpoint file; {str(weights)!r} is none of these")
    encoder = ClipEncoder(build, tag, device)
    return encoder if lazy else encoder.build()


def encode_frames(encoder: ClipEncoder, frames: Iterable[np.ndarray | Image.Image], batch_size: int = 64) -> np.ndarray:
    """Raw CLIP embeddings of RGB frames (``(H, W, 3)`` uint8 arrays or PIL images): ``(M, 512)`` float32."""
    chunks = [
        encoder.embed(torch.stack([encoder.preprocess(_as_image(frame)) for frame in batch])).numpy()
        for batch in _batches(frames, batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, encoder.feature_dim), dtype=np.float32)


def _random_model(seed: int) -> tuple[nn.Module, Callable]:
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, _, preprocess = open_clip.create_model_and_transforms(BACKBONE, pretrained=None)
    return model, preprocess


def _load_openai(download_available: Callable[[], bool]) -> tuple[nn.Module, Callable]:
    import open_clip

    cached = _cached_openai_weights()
    if cached is not None:
        return _load_checkpoint(Path(cached))
    if not download_available():
        raise WeightsUnavailableError(_missing_weights_message(f"{_DOWNLOAD_HOST} cannot be reached"))
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(BACKBONE, pretrained="openai")
    except RuntimeError as error:
        raise WeightsUnavailableError(_missing_weights_message(f"the download failed ({error})")) from error
    return model, preprocess


def _cached_openai_weights() -> str | None:
    """Path of the OpenAI ViT-B/32 checkpoint in the Hugging Face cache, if it is there."""
    from huggingface_hub import try_to_load_from_cache

    for filename in _OPENAI_FILES:
        cached = try_to_load_from_cache(OPENAI_HF_REPO, filename)
        if isinstance(cached, str):
            return cached
    return None


def _missing_weights_message(reason: str) -> str:
    return (
        f"CLIP ViT-B/32 'openai' weights are not in the local cache and {reason}. Either pass the path "
        f"of a checkpoint file as the weights (e.g. {_OPENAI_FILES[0]} downloaded from "
        f"https://huggingface.co/{OPENAI_HF_REPO} on a machine with internet, or a copy of its Hugging Face "
        "cache), or pass 'random' for an offline demo: its features are tagged 'random-init(seed=...)' "
        "and carry no meaning."
    )


def _load_checkpoint(path: Path) -> tuple[nn.Module, Callable]:
    """CLIP model with the weights of a local open_clip checkpoint (safetensors, or torch.load weights_only).

    Any failure (random bytes, a pickle that carries code, weights of another model) is one line
    naming the file; the reader's own message, which may advise unsafe loading, is not passed on.
    """
    import open_clip

    try:
        model, _, preprocess = open_clip.create_model_and_transforms(BACKBONE, pretrained=str(path), weights_only=True)
    except Exception as error:  # torch and open_clip raise many types for foreign or hostile files
        raise ValueError(
            f"cannot load {path} as {BACKBONE} weights: it is not an open_clip state dict of this model "
            f"in safetensors or plain-tensor torch format ({type(error).__name__}); code in a file is never run"
        ) from error
    return model, preprocess


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _as_image(frame: np.ndarray | Image.Image) -> Image.Image:
    return frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, dtype=np.uint8))


def _batches(items: Iterable, size: int) -> Iterator[list]:
    if size <= 0:
        raise ValueError(f"batch_size must be positive, got {size}")
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
