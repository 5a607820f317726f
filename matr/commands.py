"""What each ``matr`` sub-command does (parsing is :mod:`matr.cli`'s); the only module that prints.

Each ``cmd_<name>(args)`` returns the exit status. Checks that need no heavy work come first (device,
output folders, names), so a bad value fails before CLIP or a model is loaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matr.checkpoint import load_checkpoint
from matr.cli import CHECKPOINT_ENV, EXIT_PARTIAL, print_error
from matr.device import resolve_device
from matr.features import FeatureStore, WeightsUnavailableError, extract_features, load_clip_encoder
from matr.io import BusyError

logger = logging.getLogger("matr.cli")


class UserError(Exception):
    """A problem with the command's input, reported in one line."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types, besides ``ValueError`` and ``OSError``, that are the user's to fix (one line, no traceback)."""
    from matr.reporting.artifacts import ReportError
    from matr.reporting.runner import NotebookFailed

    return (UserError, WeightsUnavailableError, BusyError, NotebookFailed, ReportError)


def run(args: argparse.Namespace) -> int:
    """Run the sub-command ``args.command``."""
    return globals()[f"cmd_{args.command}"](args)


# --- Sub-commands -------------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace) -> int:
    from matr.synthetic import SIZES, render_dataset

    _one_of(args.size, SIZES, "--size")
    out = _out_folder(args.out or f"data/synthetic-{args.size}", "--out")
    summary = render_dataset(out, args.size, seed=args.seed, progress=_progress(args))
    pairs = ", ".join(f"{split} {count}" for split, count in summary.pairs.items())
    _say(f"{summary.rendered} videos rendered, {summary.skipped} already there, in {out}/videos; pairs: {pairs}")
    _say(f"annotations: {', '.join(str(p) for p in summary.annotations.values())}")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from matr.inference import find_videos

    device = resolve_device(args.device)
    store = _out_folder(args.store or Path(args.videos) / ".matr-features", "--store")
    videos = find_videos(args.videos)
    encoder = load_clip_encoder(args.weights, seed=args.seed, device=device)
    report = extract_features(
        videos, store, encoder, args.clip_length, shard=args.shard, batch_size=args.batch_size, progress=_progress(args)
    )
    index, count = report.shard
    _say(
        f"shard {index}/{count}: {len(report.extracted)} videos extracted ({len(report.refreshed)} re-extracted because "
        f"their file changed), {len(report.skipped)} already stored, {len(report.failed)} failed; "
        f"store {store} (weights {report.weights_tag})"
    )
    if report.failed:
        print_error("extract", f"{len(report.failed)} videos could not be decoded (listed in {store}/failures*.jsonl)")
        return EXIT_PARTIAL
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from matr.data import PretrainConfig
    from matr.experiments.runs import pretrain_model
    from matr.experiments.workspace import feature_source, run_info

    resolve_device(args.device)
    out = _out_folder(args.out, "--out")
    store = _open_store(args.features)
    if args.annotations:
        records = _records(args.annotations, args.split, store)
        videos = sorted({record.target_video for record in records})
    else:
        videos = store.video_ids()
    result = pretrain_model(
        _model_config(args),
        _train_config(args),
        feature_source(store),
        videos,
        out,
        pretrain_config=PretrainConfig(augment=not args.no_augment, seed=args.seed),
        info=run_info(store, dataset=str(args.annotations or args.features), split=args.split),
        progress=_progress(args),
    )
    _say(f"pre-trained on {len(videos)} videos for {len(result.history)} epochs: {result.last_checkpoint}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from matr.experiments.runs import finetune_model
    from matr.experiments.workspace import feature_source, run_info

    resolve_device(args.device)
    out = _out_folder(args.out, "--out")
    store = _open_store(args.features)
    records = _records(args.annotations, args.split, store)
    val_records = None
    if args.val_annotations:
        val_records = _records(args.val_annotations, args.val_split, store)
    result = finetune_model(
        _model_config(args),
        _train_config(args),
        feature_source(store),
        records,
        out,
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
    from matr.data.records import evaluation_inputs
    from matr.experiments.evaluation import BASELINES, MODEL_SOURCES, predict_baseline, predict_checkpoint
    from matr.experiments.tables import METRIC_COLUMNS
    from matr.experiments.workspace import feature_source
    from matr.prediction import write_evaluation
    from matr.provenance import provenance

    device = resolve_device(args.device)
    if args.method is not None:
        _one_of(args.method, BASELINES, "--method")
    for source in args.source:
        _one_of(source, MODEL_SOURCES, "--source")
    name = Path(args.checkpoint).stem if args.checkpoint else args.method
    out = _out_folder(args.out or f"eval-{name}-{args.split or Path(args.annotations).stem}", "--out")
    store = _open_store(args.features)
    records = _records(args.annotations, args.split, store)
    evaluation_inputs(records, str(args.annotations))  # refuses pairs without ground truth, naming the file
    info: dict[str, Any] = {
        "dataset": str(args.annotations),
        "split": args.split,
        "seed": args.seed,
        "weights_tag": store.weights_tag,
        "feature_store": str(store.root),
    }
    if args.checkpoint:
        _check_trained_on(args.checkpoint, store)
        result, stored = predict_checkpoint(
            args.checkpoint,
            feature_source(store),
            records,
            sources=args.source,
            top_k=args.top_k,
            nms_threshold=args.nms_threshold,
            device=str(device),
            progress=_progress(args),
        )
        info.update(method="MATR", checkpoint=str(args.checkpoint), epoch=stored.get("epoch"))
        info.update(config=stored.get("config"), train_run=stored.get("run"))
    else:
        result = predict_baseline(args.method, feature_source(store), records, seed=args.seed, top_k=args.top_k)
        info.update(method=args.method, config={"top_k": args.top_k})
    scores = write_evaluation(out, result, provenance(**info))
    rows = [[source, *(_cell(m[k]) for k in METRIC_COLUMNS)] for source, m in scores.items()]
    _print_table(["source", *METRIC_COLUMNS], rows)
    _say(f"predictions and metrics written to {out}/")
    return 0


def cmd_localize(args: argparse.Namespace) -> int:
    from matr.inference import load_for_inference, localize_videos

    device = resolve_device(args.device)
    _require_files(args.query, args.target)
    checkpoint = _checkpoint(args)
    model, encoder, info = load_for_inference(checkpoint, weights=args.weights, seed=args.seed, device=device)
    found = localize_videos(model, encoder, args.query, args.target, store=args.store, **_query_options(args, info))
    if args.json:
        _print_json({**found.to_json(), "checkpoint": str(checkpoint)})
        return 0
    window = f" [{found.query_window[0]:g}, {found.query_window[1]:g}] s" if found.query_window else ""
    _say(f"query  {found.query}{window} ({found.query_frames} frames)")
    _say(f"target {found.target} ({found.target_duration:.1f} s, {found.target_frames} frames)")
    _say(_weights_note(found.weights_tag))
    _print_table(
        ["rank", "start (s)", "end (s)", "score"],
        [[rank, f"{m.start:.2f}", f"{m.end:.2f}", f"{m.score:.3f}"] for rank, m in enumerate(found.moments, start=1)],
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from matr.inference import check_weights_tag, library_store, load_for_inference, search_videos

    device = resolve_device(args.device)
    _require_files(args.query)
    if not Path(args.videos).is_dir():
        raise FileNotFoundError(f"video library {args.videos} is not a folder (of videos, or a feature store)")
    checkpoint = _checkpoint(args)
    if args.weights is None:  # fail before loading CLIP when the library cannot match the checkpoint
        trained = (load_checkpoint(checkpoint).get("run") or {}).get("weights_tag")
        root = library_store(args.videos, args.store)
        check_weights_tag(trained or "openai", FeatureStore(root).weights_tag, f"feature store {root}")
    model, encoder, info = load_for_inference(checkpoint, weights=args.weights, seed=args.seed, device=device)
    found = search_videos(
        model,
        encoder,
        args.query,
        args.videos,
        store=args.store,
        per_video=args.per_video,
        progress=_progress(args),
        **_query_options(args, info),
    )
    if args.json:
        _print_json({**found.to_json(), "checkpoint": str(checkpoint)})
        return 0
    _say(f"query {found.query}; {found.videos_searched} videos searched in {found.store}")
    _say(_weights_note(found.weights_tag))
    _print_table(
        ["rank", "video", "start (s)", "end (s)", "score"],
        [[r, h.video_id, f"{h.start:.2f}", f"{h.end:.2f}", f"{h.score:.3f}"] for r, h in enumerate(found.hits, 1)],
    )
    if found.failed:
        logger.warning("%d library videos could not be decoded and were not searched", len(found.failed))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from matr.experiments.profiles import PROFILES, get_profile
    from matr.reporting.runner import DEFAULT_PROFILE, make_report

    profile = args.profile or DEFAULT_PROFILE
    _one_of(profile, PROFILES, "--profile")
    workdir = Path(args.workdir or Path("runs") / profile)
    if get_profile(profile).data.synthetic is None and not (workdir / "data" / "annotations").is_dir():
        raise UserError(
            f"profile {profile!r} needs a data folder: put annotations/{{split}}.jsonl|csv and "
            f"videos/ into {workdir / 'data'} (or pass --workdir DIR with DIR/data)"
        )
    path = make_report(
        profile,
        notebooks_dir=args.notebooks,
        out_dir=_out_folder(args.out, "--out"),
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


def _one_of(value: str, valid: Sequence[str], option: str) -> None:
    if value not in valid:
        raise UserError(f"{option} {value!r} is not one of: {', '.join(sorted(valid))}")


def _out_folder(path: str | os.PathLike, option: str) -> Path:
    """``path`` as an output folder: refused, before any work, when it names an existing file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} is an existing file, not a folder; pass a new or existing folder instead")
    return path


def _require_files(*paths: str) -> None:
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"video file {path} does not exist")


def _open_store(path: str) -> FeatureStore:
    store = FeatureStore(path)
    if not Path(path).is_dir() or store.weights_tag is None:
        raise UserError(f"{path} is not a feature store with features in it (run 'matr extract' first)")
    return store


def _records(path: str, split: str | None, store: FeatureStore) -> list:
    """The pair records of an annotation file whose videos are in ``store``, checked against its durations."""
    from matr.data.annotations import load_annotations
    from matr.experiments.workspace import stored_records

    durations = {video_id: store.info(video_id)["duration"] for video_id in store.video_ids()}
    return stored_records(load_annotations(path, split, durations=durations), store)


def _check_trained_on(checkpoint: str, store: FeatureStore) -> None:
    trained_tag = (load_checkpoint(checkpoint).get("run") or {}).get("weights_tag")
    if trained_tag is not None and trained_tag != store.weights_tag:
        raise UserError(
            f"checkpoint {checkpoint} was trained on features with weights {trained_tag!r}, "
            f"but {store.root} holds {store.weights_tag!r}"
        )


def _model_config(args: argparse.Namespace) -> Any:
    """``--preset`` with ``--set`` updates; a finetune with ``--init-from`` and no preset takes the checkpoint's."""
    from matr.checkpoint import checkpoint_config
    from matr.config import override, preset

    if args.preset is None and getattr(args, "init_from", None):
        config = checkpoint_config(load_checkpoint(args.init_from), args.init_from)
    else:
        config = preset(args.preset or "paper")
    return override(config, dict(args.set))


def _train_config(args: argparse.Namespace) -> Any:
    from matr.train import TrainConfig

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


def _query_options(args: argparse.Namespace, info: dict[str, Any]) -> dict[str, Any]:
    """The options ``localize`` and ``search`` share: clip length, query clip, top-k and NMS threshold."""
    return {
        "clip_length": _clip_length(args, info),
        "query_start": args.query_start,
        "query_end": args.query_end,
        "top_k": args.top_k,
        "nms_threshold": args.nms_threshold,
    }


def _clip_length(args: argparse.Namespace, info: dict[str, Any]) -> float:
    trained = info.get("clip_length")
    if args.clip_length is not None:
        if trained is not None and abs(float(trained) - args.clip_length) > 1e-9:
            raise UserError(
                f"the checkpoint was trained with one frame every {trained:g} s, not {args.clip_length:g} s"
            )
        return args.clip_length
    return float(trained or 2.0)


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
