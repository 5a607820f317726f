"""The ``matr`` command line: one sub-command per job (``matr <command> --help`` for its options).

::

    matr render    --profile tiny --out data/tiny                     synthetic demo videos + annotations
    matr extract   --videos data/tiny/videos --store data/tiny/features --weights random
    matr pretrain  --features STORE --annotations train.jsonl --out runs/pretrain
    matr train     --features STORE --annotations train.jsonl --val-annotations val.jsonl \\
                   --init-from runs/pretrain/last.pt --out runs/finetune
    matr evaluate  --features STORE --annotations val.jsonl --checkpoint runs/finetune/last.pt
    matr evaluate  --features STORE --annotations val.jsonl --method video_match
    matr localize  --query q.mp4 --target t.mp4 --checkpoint C [--json]
    matr search    --query q.mp4 --videos DIR_OR_STORE --checkpoint C [--json]
    matr report    --profile smoke                                    run the notebooks, build reports/README.md

User errors (a missing file, a malformed annotation, a corrupt checkpoint, an undecodable video,
unavailable weights, a bad option value) end with one line ``matr <command>: error: ...`` on
stderr and exit status 2; ``--debug`` shows the traceback instead. Logging goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch

from matr.checkpoint import CheckpointError, checkpoint_config, load_checkpoint
from matr.config import PRESETS, MATRConfig, override, preset
from matr.data import PretrainConfig
from matr.data.annotations import load_annotations
from matr.data.synthetic import PROFILES as SYNTHETIC_PROFILES
from matr.data.synthetic import render_dataset
from matr.evaluate import write_evaluation
from matr.features import FeatureStore, WeightsUnavailableError, extract_features, load_clip_encoder
from matr.inference import (
    check_weights_tag,
    find_videos,
    library_store,
    load_for_inference,
    localize_videos,
    search_videos,
)
from matr.notebooks import NotebookFailed, make_report
from matr.pipeline import (
    BASELINES,
    MODEL_SOURCES,
    TABLE_METRICS,
    evaluate_baseline,
    evaluate_checkpoint,
    feature_source,
    finetune_model,
    pretrain_model,
    run_info,
    stored_records,
)
from matr.profiles import PROFILES, get_profile
from matr.provenance import provenance
from matr.train import TrainConfig
from matr.video import VideoDecodeError

log = logging.getLogger("matr.cli")

USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    CheckpointError,
    VideoDecodeError,
    WeightsUnavailableError,
    NotebookFailed,
    KeyError,
)
EXIT_USER_ERROR = 2
EXIT_PARTIAL = 1
CHECKPOINT_ENV = "MATR_CHECKPOINT"


class UserError(Exception):
    """A problem with the command's input, reported in one line."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``matr <command>: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --- Argument types -----------------------------------------------------------------------------


def shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"expected i/n with 0 <= i < n, got {text!r}")
    return index, count


def config_update(text: str) -> tuple[str, Any]:
    """``"model.hidden_dim=128"`` -> ``("model.hidden_dim", 128)``; values are JSON, else strings."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. model.use_decoder=false), got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


# --- Sub-commands -------------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace) -> int:
    out = Path(args.out or f"data/synthetic-{args.profile}")
    summary = render_dataset(out, args.profile, seed=args.seed, progress=_progress(args))
    pairs = ", ".join(f"{split} {count}" for split, count in summary.pairs.items())
    _say(f"{summary.rendered} videos rendered, {summary.skipped} already there, in {out}/videos; pairs: {pairs}")
    _say(f"annotations: {', '.join(str(p) for p in summary.annotations.values())}")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    videos = find_videos(args.videos)
    store = Path(args.store or Path(args.videos) / ".matr-features")
    encoder = load_clip_encoder(args.weights, seed=args.seed, device=_clip_device(args.device))
    report = extract_features(
        videos, store, encoder, args.clip_length, shard=args.shard, batch_size=args.batch_size, progress=_progress(args)
    )
    index, count = report.shard
    _say(
        f"shard {index}/{count}: {len(report.extracted)} videos extracted, {len(report.skipped)} already stored, "
        f"{len(report.failed)} failed; store {store} (weights {report.weights_tag})"
    )
    if report.failed:
        _error("extract", f"{len(report.failed)} videos could not be decoded (listed in {store}/failures*.jsonl)")
        return EXIT_PARTIAL
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    store = _open_store(args.features)
    if args.annotations:
        records = stored_records(load_annotations(args.annotations, args.split), store)
        videos = sorted({record.target_video for record in records})
    else:
        videos = store.video_ids()
    config = _model_config(args)
    result = pretrain_model(
        config,
        _train_config(args),
        feature_source(store),
        videos,
        args.out,
        pretrain_config=PretrainConfig(augment=not args.no_augment, seed=args.seed),
        info=run_info(store, dataset=str(args.annotations or args.features), split=args.split),
        progress=_progress(args),
    )
    _say(f"pre-trained on {len(videos)} videos for {len(result.history)} epochs: {result.last_checkpoint}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    store = _open_store(args.features)
    records = stored_records(load_annotations(args.annotations, args.split), store)
    val_records = None
    if args.val_annotations:
        val_records = stored_records(load_annotations(args.val_annotations, args.val_split), store)
    result = finetune_model(
        _model_config(args),
        _train_config(args),
        feature_source(store),
        records,
        args.out,
        val_records=val_records,
        init_from=args.init_from,
        info=run_info(store, dataset=str(args.annotations), split=args.split),
        progress=_progress(args),
    )
    last = result.history[-1] if result.history else {}
    score = f"; last validation R1@0.5 {last['val_R1@0.5']:.1f}" if "val_R1@0.5" in last else ""
    _say(f"trained on {len(records)} pairs for {len(result.history)} epochs{score}: {result.last_checkpoint}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    store = _open_store(args.features)
    records = stored_records(load_annotations(args.annotations, args.split), store)
    base = {
        "dataset": str(args.annotations),
        "split": args.split,
        "seed": args.seed,
        "weights_tag": store.weights_tag,
        "feature_store": str(store.root),
    }
    if args.checkpoint:
        trained_tag = (load_checkpoint(args.checkpoint).get("run") or {}).get("weights_tag")
        if trained_tag is not None and trained_tag != store.weights_tag:
            raise UserError(
                f"checkpoint {args.checkpoint} was trained on features with weights {trained_tag!r}, "
                f"but {store.root} holds {store.weights_tag!r}"
            )
        result, stored = evaluate_checkpoint(
            args.checkpoint,
            feature_source(store),
            records,
            sources=args.source,
            top_k=args.top_k,
            nms_threshold=args.nms_threshold,
            device=_device(args.device),
            progress=_progress(args),
        )
        info = {
            **base,
            "method": "MATR",
            "checkpoint": str(args.checkpoint),
            "epoch": stored.get("epoch"),
            "config": stored.get("config"),
            "train_run": stored.get("run"),
        }
        name = Path(args.checkpoint).stem
    else:
        result = evaluate_baseline(args.method, feature_source(store), records, seed=args.seed, top_k=args.top_k)
        info = {**base, "method": args.method, "config": {"top_k": args.top_k}}
        name = args.method
    out = Path(args.out or f"eval-{name}-{args.split or Path(args.annotations).stem}")
    scores = write_evaluation(out, result, provenance(**info))
    _print_table(
        ["source", *TABLE_METRICS], [[source, *(_cell(m[k]) for k in TABLE_METRICS)] for source, m in scores.items()]
    )
    _say(f"predictions and metrics written to {out}/")
    return 0


def cmd_localize(args: argparse.Namespace) -> int:
    _require_files(args.query, args.target)
    model, encoder, info = load_for_inference(
        _checkpoint(args), weights=args.weights, seed=args.seed, device=_device(args.device)
    )
    found = localize_videos(
        model,
        encoder,
        args.query,
        args.target,
        clip_length=_clip_length(args, info),
        query_start=args.query_start,
        query_end=args.query_end,
        top_k=args.top_k,
        nms_threshold=args.nms_threshold,
    )
    if args.json:
        _print_json({**found.to_json(), "checkpoint": str(_checkpoint(args))})
        return 0
    _say(
        f"query  {found.query}"
        + (f" [{found.query_window[0]:g}, {found.query_window[1]:g}] s" if found.query_window else "")
        + f" ({found.query_frames} frames)"
    )
    _say(f"target {found.target} ({found.target_duration:.1f} s, {found.target_frames} frames)")
    _say(_weights_note(found.weights_tag))
    _print_table(
        ["rank", "start (s)", "end (s)", "score"],
        [[rank, f"{m.start:.2f}", f"{m.end:.2f}", f"{m.score:.3f}"] for rank, m in enumerate(found.moments, start=1)],
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    _require_files(args.query)
    if not Path(args.videos).is_dir():
        raise FileNotFoundError(f"video library {args.videos} is not a folder (of videos, or a feature store)")
    if args.weights is None:  # fail before loading CLIP when the library cannot match the checkpoint
        trained = (load_checkpoint(_checkpoint(args)).get("run") or {}).get("weights_tag")
        check_weights_tag(
            trained or "openai",
            FeatureStore(library_store(args.videos, args.store)).weights_tag,
            f"feature store {library_store(args.videos, args.store)}",
        )
    model, encoder, info = load_for_inference(
        _checkpoint(args), weights=args.weights, seed=args.seed, device=_device(args.device)
    )
    found = search_videos(
        model,
        encoder,
        args.query,
        args.videos,
        store=args.store,
        clip_length=_clip_length(args, info),
        query_start=args.query_start,
        query_end=args.query_end,
        top_k=args.top_k,
        per_video=args.per_video,
        nms_threshold=args.nms_threshold,
        progress=_progress(args),
    )
    if args.json:
        _print_json({**found.to_json(), "checkpoint": str(_checkpoint(args))})
        return 0
    _say(f"query {found.query}; {found.videos_searched} videos searched in {found.store}")
    _say(_weights_note(found.weights_tag))
    _print_table(
        ["rank", "video", "start (s)", "end (s)", "score"],
        [
            [rank, h.video_id, f"{h.start:.2f}", f"{h.end:.2f}", f"{h.score:.3f}"]
            for rank, h in enumerate(found.hits, start=1)
        ],
    )
    if found.failed:
        log.warning("%d library videos could not be decoded and were not searched", len(found.failed))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir or Path("runs") / args.profile)
    if get_profile(args.profile).synthetic is None and not (workdir / "data" / "annotations").is_dir():
        raise UserError(
            f"profile {args.profile!r} needs a data folder: put annotations/{{split}}.jsonl|csv and "
            f"videos/ into {workdir / 'data'} (or pass --workdir DIR with DIR/data)"
        )
    path = make_report(
        args.profile,
        notebooks_dir=args.notebooks,
        out_dir=args.out,
        workdir=args.workdir,
        seed=args.seed,
        device=args.device,
        from_=args.from_,
        only=args.only,
        progress=_progress(args),
    )
    _say(f"report written to {path}")
    return 0


# --- Helpers ------------------------------------------------------------------------------------


def _require_files(*paths: str) -> None:
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"video file {path} does not exist")


def _open_store(path: str) -> FeatureStore:
    store = FeatureStore(path)
    if not Path(path).is_dir() or store.weights_tag is None:
        raise UserError(f"{path} is not a feature store with features in it (run 'matr extract' first)")
    return store


def _model_config(args: argparse.Namespace) -> MATRConfig:
    """``--preset`` with ``--set`` updates; a finetune with ``--init-from`` and no preset takes the checkpoint's."""
    if args.preset is None and getattr(args, "init_from", None):
        config = checkpoint_config(load_checkpoint(args.init_from), args.init_from)
    else:
        config = preset(args.preset or "paper")
    return override(config, dict(args.set))


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs,
        lr_drop_epochs=tuple(args.lr_drop_epochs),
        seed=args.seed,
        device=args.device,
    )


def _checkpoint(args: argparse.Namespace) -> str:
    checkpoint = args.checkpoint or os.environ.get(CHECKPOINT_ENV)
    if not checkpoint:
        raise UserError(
            f"no checkpoint: pass --checkpoint PATH (or set {CHECKPOINT_ENV}); train one with "
            "'matr train' or 'matr report --profile smoke'"
        )
    return checkpoint


def _clip_length(args: argparse.Namespace, info: dict[str, Any]) -> float:
    trained = info.get("clip_length")
    if args.clip_length is not None:
        if trained is not None and abs(float(trained) - args.clip_length) > 1e-9:
            raise UserError(
                f"the checkpoint was trained with one frame every {trained:g} s, not {args.clip_length:g} s"
            )
        return args.clip_length
    return float(trained or 2.0)


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def _clip_device(name: str) -> str | None:
    """CLIP's device: this rank's GPU under ``torchrun`` (``LOCAL_RANK``), else ``name``."""
    if name != "auto":
        return name
    return f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"


def _progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _weights_note(tag: str) -> str:
    if tag.startswith("random"):
        return f"weights {tag}: random-init CLIP backbone, the moments carry no meaning beyond this demo"
    return f"weights {tag}"


def _cell(value: float) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


# --- Output (the only functions that print) ------------------------------------------------------


def _say(text: str) -> None:
    print(text)


def _error(command: str, message: str) -> None:
    print(f"matr {command}: error: {message}", file=sys.stderr)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _print_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print(
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )


# --- Parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``matr`` parser with every sub-command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="log every library message (DEBUG)")
    common.add_argument("-q", "--quiet", action="store_true", help="log warnings only, no progress bars")
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser = _Parser(
        prog="matr",
        description="MATR video-to-video moment retrieval: data, features, training, "
        "evaluation, inference and reports.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    sub = command("render", cmd_render, "render a synthetic demo dataset (videos + SportsMoments-style annotations)")
    sub.add_argument(
        "--profile", choices=sorted(SYNTHETIC_PROFILES), default="tiny", help="dataset size (default tiny)"
    )
    sub.add_argument("--out", help="output folder (default data/synthetic-PROFILE)")
    sub.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")

    sub = command("extract", cmd_extract, "extract CLIP ViT-B/32 frame features of a folder of videos into a store")
    sub.add_argument("--videos", required=True, help="folder of video files (searched recursively)")
    sub.add_argument("--store", help="feature store folder (default VIDEOS/.matr-features)")
    _add_weights(sub, default="openai")
    sub.add_argument("--seed", type=int, default=0, help="seed of --weights random (default 0)")
    sub.add_argument(
        "--shard", type=shard, help="process shard i of n (i/n); default: torchrun's RANK/WORLD_SIZE, else 0/1"
    )
    sub.add_argument("--clip-length", type=float, default=2.0, help="seconds per sampled frame (default 2, paper)")
    sub.add_argument("--batch-size", type=positive_int, default=64, help="frames per CLIP batch (default 64)")
    sub.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (default auto)")

    sub = command("pretrain", cmd_pretrain, "self-supervised pre-training: localize random clips of each video")
    _add_data(sub, annotations_required=False, split_default="train")
    sub.add_argument("--out", default="runs/pretrain", help="run folder (default runs/pretrain); resumes if present")
    sub.add_argument("--no-augment", action="store_true", help="no augmented query copies (Table 3)")
    _add_training(sub, preset_default="paper")

    sub = command("train", cmd_train, "finetune MATR on labelled pairs (optionally from a pre-training checkpoint)")
    _add_data(sub, annotations_required=True, split_default="train")
    sub.add_argument("--val-annotations", help="validation annotation file (metrics per epoch, best.pt)")
    sub.add_argument("--val-split", default="val", help="split of --val-annotations (default val)")
    sub.add_argument("--init-from", help="start from this checkpoint's weights (e.g. runs/pretrain/last.pt)")
    sub.add_argument("--out", default="runs/finetune", help="run folder (default runs/finetune); resumes if present")
    _add_training(sub, preset_default=None)

    sub = command("evaluate", cmd_evaluate, "evaluate a checkpoint or a baseline: predictions.jsonl + metrics.json")
    _add_data(sub, annotations_required=True, split_default=None)
    method = sub.add_mutually_exclusive_group(required=True)
    method.add_argument("--checkpoint", help="MATR checkpoint to evaluate")
    method.add_argument("--method", choices=BASELINES, help="training-free baseline instead of a checkpoint")
    sub.add_argument(
        "--source",
        nargs="+",
        choices=MODEL_SOURCES,
        default=["heads"],
        help="what MATR predicts from: heads, A_pre, A_post (Table 4; default heads)",
    )
    sub.add_argument("--top-k", type=positive_int, default=5, help="moments per pair (default 5)")
    sub.add_argument("--nms-threshold", type=float, default=0.7, help="NMS IoU threshold (default 0.7, paper)")
    sub.add_argument("--seed", type=int, default=0, help="seed of the random baseline (default 0)")
    sub.add_argument("--out", help="output folder (default eval-NAME-SPLIT)")
    sub.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default auto)")

    sub = command("localize", cmd_localize, "find the moments of a query video in a target video")
    sub.add_argument("--query", required=True, help="query video file")
    sub.add_argument("--target", required=True, help="target video file")
    _add_inference(sub, top_k=5)

    sub = command("search", cmd_search, "find the moments of a query video across a library of videos")
    sub.add_argument("--query", required=True, help="query video file")
    sub.add_argument("--videos", required=True, help="a folder of videos, or a feature store folder")
    sub.add_argument("--store", help="where a folder's features are kept (default VIDEOS/.matr-features)")
    sub.add_argument(
        "--per-video", type=positive_int, default=3, help="at most this many moments per video (default 3)"
    )
    _add_inference(sub, top_k=10)

    sub = command("report", cmd_report, "run the notebooks of a profile headless and build the report")
    sub.add_argument("--profile", choices=sorted(PROFILES), default="smoke", help="run profile (default smoke)")
    sub.add_argument(
        "--workdir",
        help="working folder for features and checkpoints, reused to resume "
        "(default runs/PROFILE; the paper profiles read their data from WORKDIR/data)",
    )
    sub.add_argument("--out", default="reports", help="report folder (default reports)")
    sub.add_argument("--notebooks", default="notebooks", help="folder of the notebook series (default notebooks)")
    sub.add_argument("--from", dest="from_", help="re-run the series from this notebook (number or name)")
    sub.add_argument("--only", help="re-run only these notebooks (comma-separated numbers or names)")
    sub.add_argument("--seed", type=int, help="override the profile's seed")
    sub.add_argument("--device", help="override the profile's device (auto, cpu, cuda)")
    return parser


def _add_weights(sub: argparse.ArgumentParser, default: str | None) -> None:
    sub.add_argument(
        "--weights",
        default=default,
        help="CLIP weights: openai, random (meaningless features, for offline demos) or a checkpoint "
        "file" + (f" (default {default})" if default else " (default: those the checkpoint was trained on)"),
    )


def _add_data(sub: argparse.ArgumentParser, *, annotations_required: bool, split_default: str | None) -> None:
    sub.add_argument("--features", required=True, help="feature store folder (from 'matr extract')")
    sub.add_argument(
        "--annotations",
        required=annotations_required,
        help="annotation file: matr pairs (.jsonl), SportsMoments (.jsonl or .csv) or own videos (.csv)",
    )
    sub.add_argument(
        "--split",
        default=split_default,
        help=f"split of --annotations to use (default {split_default or 'all records'})",
    )


def _add_training(sub: argparse.ArgumentParser, *, preset_default: str | None) -> None:
    default = preset_default or "paper, or that of --init-from"
    sub.add_argument(
        "--preset", choices=sorted(PRESETS), default=preset_default, help=f"model preset (default {default})"
    )
    sub.add_argument(
        "--set",
        type=config_update,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, repeatable (e.g. --set model.align_method=tcc)",
    )
    sub.add_argument("--epochs", type=positive_int, default=10, help="epochs (default 10)")
    sub.add_argument("--batch-size", type=positive_int, default=32, help="pairs per batch and process (default 32)")
    sub.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (default 1e-4, paper)")
    sub.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay (default 1e-4, paper)")
    sub.add_argument("--warmup-epochs", type=int, default=0, help="linear warm-up epochs (default 0)")
    sub.add_argument(
        "--lr-drop-epochs",
        type=positive_int,
        nargs="*",
        default=[],
        metavar="EPOCH",
        help="multiply the learning rate by 0.1 at each of these epochs (default none)",
    )
    sub.add_argument("--seed", type=int, default=0, help="seed of initialisation, sampling and dropout (default 0)")
    sub.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")


def _add_inference(sub: argparse.ArgumentParser, *, top_k: int) -> None:
    sub.add_argument("--checkpoint", help=f"MATR checkpoint (default ${CHECKPOINT_ENV})")
    sub.add_argument("--top-k", type=positive_int, default=top_k, help=f"moments to list (default {top_k})")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_weights(sub, default=None)
    sub.add_argument("--seed", type=int, help="seed of --weights random (default: the checkpoint's)")
    sub.add_argument("--query-start", type=float, help="use the query video from this second")
    sub.add_argument("--query-end", type=float, help="use the query video up to this second")
    sub.add_argument("--clip-length", type=float, help="seconds per frame (default: the checkpoint's)")
    sub.add_argument("--nms-threshold", type=float, default=0.7, help="NMS IoU threshold (default 0.7, paper)")
    sub.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")


# --- Entry point --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``matr`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("matr").setLevel(level)
    try:
        return args.handler(args)
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PARTIAL
    except (UserError, *USER_ERRORS) as error:
        if args.debug:
            raise
        _error(args.command, error.args[0] if isinstance(error, KeyError) and error.args else str(error))
        return EXIT_USER_ERROR
