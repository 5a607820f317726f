"""The ``matr`` command line: one sub-command per job (``matr <command> --help`` for its options).

::

    matr render    --size tiny --out data/tiny                        synthetic demo videos + annotations
    matr extract   --videos data/tiny/videos --store data/tiny/features --weights random
    matr pretrain  --features STORE --annotations train.jsonl --out runs/pretrain
    matr train     --features STORE --annotations train.jsonl --val-annotations val.jsonl \\
                   --init-from runs/pretrain/last.pt --out runs/finetune
    matr evaluate  --features STORE --annotations val.jsonl --checkpoint runs/finetune/last.pt
    matr evaluate  --features STORE --annotations val.jsonl --method video_match
    matr localize  --query q.mp4 --target t.mp4 --checkpoint C [--store CACHE] [--json]
    matr search    --query q.mp4 --videos DIR_OR_STORE --checkpoint C [--json]
    matr report    --profile demo                                     run the notebooks, build reports/README.md

This module only parses: it imports nothing heavy, so ``--help`` and argument errors answer at once;
the commands (:mod:`matr.commands`) import torch and the rest when they run. Every numeric option
is range-checked where it is parsed, its valid range in the message.

User errors (a missing file, a malformed annotation, a corrupt checkpoint, an undecodable video,
unavailable weights, a bad option value, a read-only or full disk, a busy feature store) end with
one line ``matr <command>: error: ...`` on stderr and exit status 2; ``--debug`` shows the
traceback instead. Ctrl-C ends with one line and exit status 130. Logging goes to stderr.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from matr.config import PRESETS
from matr.device import DEVICE_NAME

EXIT_USER_ERROR = 2
EXIT_PARTIAL = 1
EXIT_INTERRUPTED = 130
CHECKPOINT_ENV = "MATR_CHECKPOINT"
MAX_SEED = 2**32 - 1
RESUMABLE = frozenset({"render", "extract", "pretrain", "train", "search", "report"})
"""Commands that keep what they finished, so that rerunning them after Ctrl-C resumes."""
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``matr <command>: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --- Argument types -----------------------------------------------------------------------------


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """Argument type: an integer in ``[low, high]`` (``high=None``: no upper bound)."""
    valid = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {valid}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {valid}, got {text}")
        return value

    return parse


def real(low: float, high: float = math.inf, *, open_low: bool = False) -> Callable[[str], float]:
    """Argument type: a finite number in ``[low, high]`` (``(low, high]`` with ``open_low``)."""
    if high == math.inf:
        valid = f"a finite number {'>' if open_low else '>='} {low:g}"
    else:
        valid = f"a number in {'(' if open_low else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {valid}, got {text!r}") from None
        below = value <= low if open_low else value < low
        if not math.isfinite(value) or below or value > high:
            raise argparse.ArgumentTypeError(f"expected {valid}, got {text}")
        return value

    return parse


def shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"expected i/n with 0 <= i < n, got {text!r}")
    return index, count


def device(text: str) -> str:
    """A device name :func:`matr.device.resolve_device` accepts (whether the hardware is there is checked later)."""
    if not DEVICE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def config_update(text: str) -> tuple[str, Any]:
    """``"model.hidden_dim=128"`` -> ``("model.hidden_dim", 128)``; values are JSON, else strings."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. model.use_decoder=false), got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


positive_int = integer(1)
seed = integer(0, MAX_SEED)
clip_length = real(0.0, 3600.0, open_low=True)
iou_threshold = real(0.0, 1.0)


# --- Parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``matr`` parser with every sub-command; each sets ``command`` to a function name of :mod:`matr.commands`."""
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

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=[common])

    sub = command("render", "render a synthetic demo dataset (videos + SportsMoments-style annotations)")
    sub.add_argument("--size", default="tiny", help="dataset size of the synthetic generator (default tiny)")
    sub.add_argument("--out", help="output folder (default data/synthetic-SIZE)")
    sub.add_argument("--seed", type=seed, default=0, help=f"dataset seed in [0, {MAX_SEED}] (default 0)")

    sub = command("extract", "extract CLIP ViT-B/32 frame features of a folder of videos into a store")
    sub.add_argument("--videos", required=True, help="folder of video files (searched recursively)")
    sub.add_argument("--store", help="feature store folder (default VIDEOS/.matr-features)")
    _add_weights(sub, default="openai")
    sub.add_argument("--seed", type=seed, default=0, help="seed of --weights random (default 0)")
    sub.add_argument(
        "--shard", type=shard, help="process shard i of n (i/n); default: torchrun's RANK/WORLD_SIZE, else 0/1"
    )
    sub.add_argument("--clip-length", type=clip_length, default=2.0, help="seconds per frame, in (0, 3600] (default 2)")
    sub.add_argument("--batch-size", type=positive_int, default=64, help="frames per CLIP batch, >= 1 (default 64)")
    _add_device(sub)

    sub = command("pretrain", "self-supervised pre-training: localize random clips of each video")
    _add_data(sub, annotations_required=False, split_default="train")
    sub.add_argument("--out", default="runs/pretrain", help="run folder (default runs/pretrain); resumes if present")
    sub.add_argument("--no-augment", action="store_true", help="no augmented query copies (Table 3)")
    _add_training(sub, preset_default="paper")

    sub = command("train", "finetune MATR on labelled pairs (optionally from a pre-training checkpoint)")
    _add_data(sub, annotations_required=True, split_default="train")
    sub.add_argument("--val-annotations", help="validation annotation file (metrics per epoch, best.pt)")
    sub.add_argument("--val-split", default="val", help="split of --val-annotations (default val)")
    sub.add_argument("--init-from", help="start from this checkpoint's weights (e.g. runs/pretrain/last.pt)")
    sub.add_argument("--out", default="runs/finetune", help="run folder (default runs/finetune); resumes if present")
    _add_training(sub, preset_default=None)

    sub = command("evaluate", "evaluate a checkpoint or a baseline: predictions.jsonl + metrics.json")
    _add_data(sub, annotations_required=True, split_default=None)
    method = sub.add_mutually_exclusive_group(required=True)
    method.add_argument("--checkpoint", help="MATR checkpoint to evaluate")
    method.add_argument("--method", help="training-free baseline instead of a checkpoint: random or video_match")
    sub.add_argument(
        "--source", nargs="+", default=["heads"], help="what MATR predicts from: heads, A_pre, A_post (default heads)"
    )
    sub.add_argument("--top-k", type=positive_int, default=5, help="moments per pair, >= 1 (default 5)")
    sub.add_argument(
        "--nms-threshold", type=iou_threshold, default=0.7, help="NMS IoU threshold in [0, 1] (default 0.7)"
    )
    sub.add_argument("--seed", type=seed, default=0, help="seed of the random baseline (default 0)")
    sub.add_argument("--out", help="output folder (default eval-NAME-SPLIT)")
    _add_device(sub)

    sub = command("localize", "find the moments of a query video in a target video")
    sub.add_argument("--query", required=True, help="query video file")
    sub.add_argument("--target", required=True, help="target video file")
    sub.add_argument("--store", help="feature store that caches both videos' features between calls (default none)")
    _add_inference(sub, top_k=5)

    sub = command("search", "find the moments of a query video across a library of videos")
    sub.add_argument("--query", required=True, help="query video file")
    sub.add_argument("--videos", required=True, help="a folder of videos, or a feature store folder")
    sub.add_argument("--store", help="where a folder's features are kept (default VIDEOS/.matr-features)")
    sub.add_argument("--per-video", type=positive_int, default=3, help="at most this many moments per video (>= 1)")
    _add_inference(sub, top_k=10)

    sub = command("report", "run the notebooks of a profile headless and build the report")
    sub.add_argument("--profile", help="run profile (default: that of 'make report')")
    sub.add_argument(
        "--workdir", help="working folder for features and checkpoints, reused to resume (default runs/PROFILE)"
    )
    sub.add_argument("--out", default="reports", help="report folder (default reports)")
    sub.add_argument("--notebooks", default="notebooks", help="folder of the notebook series (default notebooks)")
    sub.add_argument("--from", dest="from_", help="re-run the series from this notebook (number or name)")
    sub.add_argument("--only", help="re-run only these notebooks (comma-separated numbers or names)")
    sub.add_argument("--seed", type=seed, help="override the profile's seed")
    sub.add_argument("--device", type=device, help="override the profile's device (auto, cpu, cuda, cuda:N)")
    return parser


def _add_device(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")


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
        "--split", default=split_default, help=f"split of --annotations to use (default {split_default or 'all'})"
    )


def _add_training(sub: argparse.ArgumentParser, *, preset_default: str | None) -> None:
    default = preset_default or "paper, or that of --init-from"
    sub.add_argument(
        "--preset", choices=sorted(PRESETS), default=preset_default, help=f"model preset (default {default})"
    )
    updates = {"type": config_update, "action": "append", "default": [], "metavar": "KEY=VALUE"}
    sub.add_argument("--set", **updates, help="config override, repeatable (e.g. --set model.align_method=tcc)")
    sub.add_argument("--epochs", type=positive_int, default=10, help="epochs, >= 1 (default 10)")
    sub.add_argument("--batch-size", type=positive_int, default=32, help="pairs per batch and process (default 32)")
    sub.add_argument(
        "--lr", type=real(0.0, 1.0, open_low=True), default=1e-4, help="learning rate in (0, 1] (default 1e-4)"
    )
    sub.add_argument("--weight-decay", type=real(0.0, 1.0), default=1e-4, help="weight decay in [0, 1] (default 1e-4)")
    sub.add_argument("--warmup-epochs", type=integer(0), default=0, help="linear warm-up epochs, >= 0 (default 0)")
    drop = "multiply the learning rate by 0.1 at each of these epochs, >= 1 (default none)"
    sub.add_argument("--lr-drop-epochs", type=positive_int, nargs="*", default=[], metavar="EPOCH", help=drop)
    sub.add_argument("--seed", type=seed, default=0, help="seed of initialisation, sampling and dropout (default 0)")
    _add_device(sub)


def _add_inference(sub: argparse.ArgumentParser, *, top_k: int) -> None:
    sub.add_argument("--checkpoint", help=f"MATR checkpoint (default ${CHECKPOINT_ENV})")
    sub.add_argument("--top-k", type=positive_int, default=top_k, help=f"moments to list, >= 1 (default {top_k})")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_weights(sub, default=None)
    sub.add_argument("--seed", type=seed, help="seed of --weights random (default: the checkpoint's)")
    sub.add_argument("--query-start", type=real(0.0), help="use the query video from this second (>= 0)")
    sub.add_argument("--query-end", type=real(0.0, open_low=True), help="use the query video up to this second (> 0)")
    sub.add_argument("--clip-length", type=clip_length, help="seconds per frame (default: the checkpoint's)")
    sub.add_argument(
        "--nms-threshold", type=iou_threshold, default=0.7, help="NMS IoU threshold in [0, 1] (default 0.7)"
    )
    _add_device(sub)


# --- Entry point --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``matr`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    _configure_logging(args)
    try:
        from matr import commands

        return commands.run(args)
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PARTIAL
    except KeyboardInterrupt:
        if args.debug:
            raise
        resume = "; rerun the same command to resume" if args.command in RESUMABLE else ""
        print_error(args.command, f"interrupted{resume}")
        return EXIT_INTERRUPTED
    except Exception as error:
        message = _user_message(error)
        if message is None or args.debug:
            raise
        print_error(args.command, message)
        return EXIT_USER_ERROR


def _user_message(error: Exception) -> str | None:
    """The one-line message of a user error (``None``: a bug, whose traceback is shown)."""
    from matr.io import WriteError

    if isinstance(error, OSError) and not isinstance(error, WriteError) and error.errno in _WRITE_ERRNOS:
        return str(WriteError(error.filename or "a file", error))
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    if isinstance(error, (ValueError, OSError, KeyError)):
        return str(error)
    from matr import commands

    return str(error) if isinstance(error, commands.user_errors()) else None


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("matr").setLevel(level)


def print_error(command: str, message: str) -> None:
    """Print the one-line error of a command to stderr."""
    print(f"matr {command}: error: {message}", file=sys.stderr)
