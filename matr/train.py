"""One training loop for self-supervised pre-training and supervised finetuning (paper 3.3, 5.2).

``fit`` trains a MATR model on a dataset of pairs (real pairs for finetuning, random clips of a
video for pre-training: the loop does not care) with AdamW (lr 1e-4, weight decay 1e-4 as in the
paper), optional linear warm-up and step decay, gradient clipping, bf16 autocast on a GPU and an
optional ``torch.compile``. A step never waits for the GPU: the losses are summed on the device and
read once per epoch; batches are collated in pinned memory and copied asynchronously. One progress
bar covers the whole run (every epoch's steps) and every epoch logs one INFO line with its losses
and validation metric.

What a run leaves in its folder:

* ``last.pt``: weights, optimiser state, completed epochs, config, RNG state (every epoch);
* ``best.pt``: the weights with the best validation R1@0.5 so far;
* ``metrics.jsonl``: one record per epoch (losses, learning rate, validation metrics, seconds).

Every file is written atomically. ``resume=True`` continues from ``last.pt`` and, with the same
seed, ends with exactly the weights an uninterrupted run would have: batches come from a sampler
seeded with ``seed + epoch``, and the global RNG state (dropout) is saved with every checkpoint.
``init_from`` starts finetuning from a pre-training checkpoint (weights only).

The same entry point runs under ``torchrun``: when ``WORLD_SIZE > 1`` it joins the process group
(NCCL on GPUs, gloo on CPU), wraps the model in DistributedDataParallel and gives each rank a
disjoint shard of every epoch; ``batch_size`` is per process, and rank 0 alone evaluates and writes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from matr import choices
from matr.checkpoint import CheckpointError, checkpoint_config, load_checkpoint, load_weights, save_checkpoint
from matr.config import MATRConfig, from_mapping
from matr.data import collate_pairs
from matr.device import resolve_device
from matr.io import read_jsonl, write_jsonl
from matr.losses import MATRLoss
from matr.metrics import evaluate as score_predictions
from matr.model import MATR
from matr.postprocess import NMS_THRESHOLD, TOP_K
from matr.prediction import move_to_device, predict
from matr.progress import bar_options

logger = logging.getLogger(__name__)

BEST_METRIC = choices.declare(
    "best checkpoint", "R1@0.5", "validation metric that picks best.pt; the paper's main metric"
)
choices.declare(
    "training precision", "bf16 autocast on a GPU, float32 on the CPU", "paper silent; bf16 keeps float32's range"
)
RESUME_MAY_CHANGE = ("epochs", "device", "num_workers", "compile")  # settings that do not change what is learned


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Paper values where it gives them (5.2); the rest are ours."""

    epochs: int = 10
    batch_size: int = 32  # per process
    lr: float = 1e-4  # paper 5.2
    weight_decay: float = 1e-4  # paper 5.2
    warmup_epochs: int = choices.declare(
        "warm-up epochs", 0, "paper silent: linear warm-up over this many epochs (profiles may set it)"
    )
    lr_drop_epochs: tuple[int, ...] = ()  # paper silent: lr *= lr_drop_factor at each of these epochs
    lr_drop_factor: float = choices.declare("lr drop factor", 0.1, "paper silent; DETR's step decay")
    grad_clip: float = choices.declare("gradient clipping", 1.0, "paper silent: max global gradient norm (0 disables)")
    seed: int = 0
    eval_every: int = 1  # epochs between validations
    top_k: int = TOP_K
    nms_threshold: float = NMS_THRESHOLD  # paper 3.2
    num_workers: int = 0
    device: str = "auto"  # "auto": CUDA when available (the local GPU of this rank), else CPU
    bf16: bool = True  # bf16 autocast on CUDA; ignored on CPU
    compile: bool = False  # torch.compile the model (the hard alignments stay eager)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        object.__setattr__(self, "lr_drop_epochs", tuple(self.lr_drop_epochs))

    def learning_rate(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``: warm-up, then step decay."""
        lr = self.lr * self.lr_drop_factor ** sum(epoch >= m for m in self.lr_drop_epochs)
        if epoch < self.warmup_epochs:
            lr *= (epoch + 1) / (self.warmup_epochs + 1)
        return lr

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of ``dataclasses.asdict``; unknown keys raise ``ValueError`` listing them."""
        return from_mapping(cls, data)


@dataclass
class TrainResult:
    """What ``fit`` did: its folder, the per-epoch log and the best validation score."""

    out_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = -math.inf

    @property
    def best_checkpoint(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def last_checkpoint(self) -> Path:
        return self.out_dir / "last.pt"


@dataclass(frozen=True)
class Distributed:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Distributed:
    """Join the ``torchrun`` process group when ``WORLD_SIZE > 1`` (NCCL on GPUs, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def fit(
    config: MATRConfig,
    train_config: TrainConfig,
    train_set: Dataset,
    out_dir: str | os.PathLike,
    *,
    val_set: Dataset | None = None,
    init_from: str | os.PathLike | None = None,
    resume: bool = True,
    collate_fn: Callable = collate_pairs,
    run_info: dict[str, Any] | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train MATR; see the module docstring for what is written to ``out_dir``.

    ``run_info`` (dataset, split, backbone weights tag, ...) is stored in every checkpoint.
    """
    out_dir = Path(out_dir)
    place = init_distributed()
    device = resolve_device(train_config.device, local_rank=place.local_rank)
    torch.manual_seed(train_config.seed)
    model = MATR(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay)
    result = TrainResult(out_dir)
    start_epoch = _restore(model, optimizer, config, train_config, result, resume, init_from, device)
    if place.world_size > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    sampler = DistributedSampler(
        train_set, num_replicas=place.world_size, rank=place.rank, shuffle=True, seed=train_config.seed
    )
    loader = DataLoader(
        train_set,
        batch_size=train_config.batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=train_config.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=train_config.num_workers > 0,
    )
    step = training_step(model, MATRLoss(config.loss), optimizer, train_config, device)
    bar = tqdm(
        total=len(loader) * (train_config.epochs - start_epoch),
        desc=f"train {out_dir.name}",
        **(bar_options(progress) if place.is_main else {"disable": True}),
    )
    for epoch in range(start_epoch, train_config.epochs):
        started = time.perf_counter()
        sampler.set_epoch(epoch)
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        losses = _train_epoch(model, loader, step, optimizer, train_config, epoch, device, bar)
        record = {"epoch": epoch + 1, "lr": train_config.learning_rate(epoch), **losses}
        if place.is_main:
            if val_set is not None and ((epoch + 1) % train_config.eval_every == 0 or epoch + 1 == train_config.epochs):
                record.update(_validate(model, val_set, train_config, collate_fn, device))
            record["seconds"] = round(time.perf_counter() - started, 3)
            _end_epoch(model, optimizer, config, train_config, result, record, run_info or {})
        if place.world_size > 1:
            dist.barrier()
    bar.close()
    return result


def compile_blocks(model: MATR) -> None:
    """``torch.compile`` every block of ``model`` in place, leaving its alignment code eager."""
    blocks = [model.projection, *model.encoder, model.fg_head, model.boundary_head]
    if model.config.use_decoder:
        blocks += list(model.decoder)
    for block in blocks:
        block.compile()


def training_step(
    model: nn.Module, criterion: MATRLoss, optimizer: torch.optim.Optimizer, cfg: TrainConfig, device: torch.device
) -> Callable[[dict], dict[str, torch.Tensor]]:
    """One optimisation step on a batch already on ``device``; returns the detached loss terms.

    Nothing in it reads a tensor on the host, so on a GPU the step is queued and never waited for.
    ``cfg.compile`` compiles the network's blocks (projection, Transformer layers, heads) with
    ``torch.compile``; the alignment dynamic programmes stay eager (their loops would be unrolled).
    """
    if cfg.compile:
        compile_blocks(model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model)
    autocast = cfg.bf16 and device.type == "cuda"

    def step(batch: dict) -> dict[str, torch.Tensor]:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            terms = criterion(model(batch), batch)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip, foreach=True)
        optimizer.step()
        return {name: value.detach() for name, value in terms.items()}

    return step


def _train_epoch(
    model: nn.Module,
    loader: DataLoader,
    step: Callable[[dict], dict[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    epoch: int,
    device: torch.device,
    bar: tqdm,
) -> dict[str, float]:
    """One pass over ``loader``; returns the mean of every loss term (prefixed ``train_``).

    The terms are summed on ``device`` and read back once, at the end of the epoch.
    """
    for group in optimizer.param_groups:
        group["lr"] = cfg.learning_rate(epoch)
    model.train()
    totals: dict[str, torch.Tensor] = {}
    steps = 0
    for batch in loader:
        terms = step(move_to_device(batch, device))
        for name, value in terms.items():
            totals[name] = totals[name] + value.float() if name in totals else value.float()
        steps += 1
        bar.update()
    means = {name: float(value) / max(steps, 1) for name, value in totals.items()}
    if not math.isfinite(means.get("loss", 0.0)):
        raise FloatingPointError(f"training loss became {means['loss']} in epoch {epoch + 1}")
    bar.set_postfix(epoch=epoch + 1, loss=f"{means.get('loss', math.nan):.3f}")
    return {f"train_{name}": value for name, value in means.items()}


def _validate(
    model: nn.Module, val_set: Dataset, cfg: TrainConfig, collate_fn: Callable, device: torch.device
) -> dict[str, float]:
    """Validation metrics (prefixed ``val_``) of the heads' predictions."""
    loader = DataLoader(val_set, batch_size=cfg.batch_size, shuffle=False, collate_fn=collate_fn)
    module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    result = predict(module, loader, device=device, top_k=cfg.top_k, nms_threshold=cfg.nms_threshold, progress=False)
    scores = score_predictions(result.predictions["heads"], result.ground_truth)
    return {f"val_{name}": value for name, value in scores.items()}


def _end_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: MATRConfig,
    cfg: TrainConfig,
    result: TrainResult,
    record: dict[str, Any],
    run_info: dict[str, Any],
) -> None:
    """Log the epoch, keep the best weights, then write ``last.pt`` (the resume point) last."""
    result.history.append(record)
    write_jsonl(result.out_dir / "metrics.jsonl", result.history)
    logger.info("%s", epoch_line(record, cfg.epochs))
    score = record.get(f"val_{BEST_METRIC}")
    if score is not None and score > result.best_score:
        result.best_score = score
        save_checkpoint(
            result.best_checkpoint,
            model,
            config,
            epoch=record["epoch"],
            metrics=record,
            run=run_info,
            train_config=dataclasses.asdict(cfg),
        )
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    save_checkpoint(
        result.last_checkpoint,
        model,
        config,
        epoch=record["epoch"],
        optimizer=optimizer.state_dict(),
        train_config=dataclasses.asdict(cfg),
        best_score=result.best_score,
        rng=rng,
        run=run_info,
    )


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    """One log line of an epoch: its losses, the validation metric when there is one, lr and seconds."""
    names = sorted((n for n in record if n.startswith("train_")), key=lambda n: (n != "train_loss", n))  # loss first
    losses = " ".join(f"{name.removeprefix('train_')}={record[name]:.4f}" for name in names)
    line = f"epoch {record['epoch']}/{epochs}: {losses}"
    if f"val_{BEST_METRIC}" in record:
        line += f" | val {BEST_METRIC}={record[f'val_{BEST_METRIC}']:.4f} mIoU={record.get('val_mIoU', math.nan):.4f}"
    return line + f" | lr={record['lr']:.2e} {record.get('seconds', 0.0):.1f}s"


def _restore(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: MATRConfig,
    cfg: TrainConfig,
    result: TrainResult,
    resume: bool,
    init_from: str | os.PathLike | None,
    device: torch.device,
) -> int:
    """Resume from ``last.pt`` or initialise from ``init_from``; returns the first epoch to run."""
    if resume and result.last_checkpoint.exists():
        data = load_checkpoint(result.last_checkpoint)
        _check_same_run(data, config, cfg, result.last_checkpoint)
        load_weights(model, data, result.last_checkpoint)
        optimizer.load_state_dict(data["optimizer"])
        torch.set_rng_state(data["rng"]["torch"])
        if "cuda" in data["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(data["rng"]["cuda"])
        result.best_score = data["best_score"]
        result.history = [r for r in _read_history(result.out_dir) if r["epoch"] <= data["epoch"]]
        logger.info("resuming %s after epoch %d", result.out_dir, data["epoch"])
        return int(data["epoch"])
    if init_from is not None:
        data = load_checkpoint(init_from)
        if checkpoint_config(data, init_from).model != config.model:
            raise CheckpointError(f"{init_from}: its model config differs from the one being trained")
        load_weights(model, data, init_from)
        model.to(device)
    return 0


def _check_same_run(data: dict[str, Any], config: MATRConfig, cfg: TrainConfig, path: Path) -> None:
    """Refuse to resume a run whose config or seed differs from the stored one."""
    if checkpoint_config(data, path) != config:
        raise CheckpointError(f"{path} was written with another model/loss config; use a new folder or resume=False")
    stored = TrainConfig.from_dict(data["train_config"])
    if dataclasses.replace(stored, **{name: getattr(cfg, name) for name in RESUME_MAY_CHANGE}) != cfg:
        raise CheckpointError(
            f"{path} was written with other training settings; only {', '.join(RESUME_MAY_CHANGE)} may change on resume"
        )


def _read_history(out_dir: Path) -> Sequence[dict[str, Any]]:
    path = out_dir / "metrics.jsonl"
    return read_jsonl(path) if path.exists() else []
