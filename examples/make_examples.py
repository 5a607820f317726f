"""Make what `matr` ships for trying it: a demo checkpoint and one example query/target pair.

    python examples/make_examples.py --data runs/demo/data --features runs/demo/features  # after `make report`
    python examples/make_examples.py        # renders and extracts the demo data itself first (resumable, long)

Steps, through the ``matr`` command line so that they are exactly what a user would run: render
the synthetic ``demo`` data (v2, :mod:`matr.synthetic`; unless ``--data`` names a rendered
dataset), extract CLIP features with the random-init backbone (``random-init(seed=SEED)``: no
download, any machine rebuilds it from the tag; unless ``--features`` names such a store), train
the small ``smoke`` model on the training split, and write the slimmed last checkpoint (weights,
config, run record; no optimiser state) into ``--out``, with the example pair of
:func:`matr.synthetic.example_pair` (a test pair: classes never seen in training). The checkpoint
then localizes the query in the target and the ranked moments are written into
``provenance.json`` with the data, the backbone tag and the command, so that ``tests/test_api.py``
can check that the shipped files reproduce them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import sys
from pathlib import Path

import torch

import matr
from matr.cli import main as matr_cli
from matr.features import FeatureStore, is_random_init
from matr.io import write_json
from matr.provenance import git_commit
from matr.synthetic import example_pair

EXAMPLES = Path(__file__).resolve().parent
CHECKPOINT = "demo_checkpoint.pt"
QUERY, TARGET = "query.mp4", "target.mp4"
PROVENANCE = "provenance.json"
KEPT_KEYS = ("format", "version", "config", "model", "run", "epoch")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="runs/examples", help="scratch folder, reused (default runs/examples)")
    parser.add_argument("--data", help="a rendered synthetic dataset (videos/, annotations/); default: render one")
    parser.add_argument("--features", help="a feature store of --data made with random-init weights; default: extract")
    parser.add_argument("--synthetic", default="demo", help="synthetic dataset size to render (default demo)")
    parser.add_argument("--out", default=str(EXAMPLES), help="where the shipped files go (default examples/)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, backbone and training (default 0)")
    return parser.parse_args(argv)


def run(*argv: str) -> None:
    """One ``matr`` command, in this process; a failure stops the script."""
    if matr_cli(list(argv)) != 0:
        sys.exit(f"matr {' '.join(argv)} failed")


def render(args: argparse.Namespace, workdir: Path) -> Path:
    if args.data:
        return Path(args.data)
    data = workdir / "data"
    run("render", "--size", args.synthetic, "--out", str(data), "--seed", str(args.seed))
    return data


def extract(args: argparse.Namespace, data: Path, workdir: Path) -> Path:
    if args.features is None:
        run("extract", "--videos", str(data / "videos"), "--store", str(workdir / "features"), "--weights", "random",
            "--seed", str(args.seed), "--device", "cpu")  # fmt: skip
    store = Path(args.features or workdir / "features")
    tag = FeatureStore(store).weights_tag
    if tag is None or not is_random_init(tag):
        sys.exit(f"{store} holds features of weights {tag!r}; the demo checkpoint needs a random-init backbone")
    return store


def train(args: argparse.Namespace, store: Path, data: Path, workdir: Path) -> Path:
    out = workdir / "run"
    run(
        "train", "--features", str(store), "--annotations", str(data / "annotations" / "train.jsonl"),
        "--split", "train", "--preset", "smoke", "--set", "model.align_cost=contrastive", "--set", "model.align_span=moment",
        "--epochs", str(args.epochs), "--batch-size", "8", "--lr", "1e-3", "--seed", str(args.seed),
        "--device", "cpu", "--out", str(out), "--quiet",
    )  # fmt: skip
    return out / "last.pt"


def slim_checkpoint(source: Path, destination: Path) -> None:
    """Weights, config and run record of ``source``; the optimiser state and RNG states are dropped."""
    data = torch.load(source, map_location="cpu", weights_only=True)
    torch.save({key: data[key] for key in KEPT_KEYS if key in data}, destination)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    workdir, out = Path(args.workdir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = render(args, workdir)
    checkpoint = train(args, extract(args, data, workdir), data, workdir)
    pair = example_pair(workdir / "example", seed=args.seed)
    shutil.copyfile(pair["query"], out / QUERY)
    shutil.copyfile(pair["target"], out / TARGET)
    slim_checkpoint(checkpoint, out / CHECKPOINT)
    model = matr.load(out / CHECKPOINT, device="cpu")
    found = model.localize(out / QUERY, out / TARGET)
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    write_json(
        out / PROVENANCE,
        {
            "command": shlex.join(["python", "examples/make_examples.py", *(argv or sys.argv[1:])]),
            "git_commit": git_commit(),
            "weights_tag": model.weights_tag,
            "checkpoint": {"file": CHECKPOINT, "sha256": sha256(out / CHECKPOINT), "run": model.info},
            "data": {"training": manifest, "example_pair": f"matr.synthetic.example_pair(seed={args.seed})"},
            "ground_truth": {"moment": pair["moment"], "action_class": pair["action_class"]},
            "files": {name: sha256(out / name) for name in (QUERY, TARGET)},
            "clip_length": model.clip_length,
            "predictions": found.to_json()["moments"],
        },
    )


if __name__ == "__main__":
    main()
