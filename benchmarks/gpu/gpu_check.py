"""The ``gpu-check`` run of issue 11: the whole notebook series headless on the GPU, timed.

Runs :func:`matr.reporting.runner.make_report` under the ``gpu-check`` profile (synthetic demo
data, the paper's model in bf16; ``matr/experiments/profiles/gpu-check.toml``) in a child process
that gets the stage's time limit less a reserve (``STAGE_LIMIT_S``, set by ``run.py``), so this
script always writes its results, finished or not:

* ``--out`` (JSON): profile, machine, whether the series finished, its seconds, each notebook's
  seconds (``timings.json`` of the run, written as every notebook ends) and, from every table the
  notebooks wrote, each row's R1@0.5 and mIoU (a check that the numbers exist, not a result:
  few epochs, one seed, random-init CLIP without internet);
* ``--archive`` (tar.gz): the report folder (README.md, report.html, executed notebooks,
  artifacts), without images when that would pass 15 MB.

Run by ``benchmarks/gpu/run.sh``; by hand: ``python benchmarks/gpu/gpu_check.py --out gpu_check.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

RESERVE_S = 25.0
ARCHIVE_LIMIT = 15 * 2**20


def run_series(profile: str, report: Path, workdir: Path, only: str | None, limit_s: float) -> dict:
    """``make_report`` in a child process under ``limit_s``: its exit code, seconds and log tail."""
    kwargs = {"out_dir": str(report), "workdir": str(workdir), "progress": True}
    if only:
        kwargs["only"] = only
    code = f"from matr.reporting.runner import make_report; make_report({profile!r}, **{kwargs!r})"
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=limit_s, check=False
        )
        rc, log = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as error:
        rc, log = None, f"timed out after {limit_s:.0f} s\n{error.stderr or ''}"
    return {"rc": rc, "finished": rc == 0, "seconds": round(time.perf_counter() - started, 1), "log_tail": log[-4000:]}


def table_numbers(artifacts: Path) -> dict[str, list[dict]]:
    """R1@0.5 and mIoU of every row of every ``table.json`` under ``artifacts``."""
    tables = {}
    for path in sorted(artifacts.glob("*/table.json")):
        rows = json.loads(path.read_text()).get("rows", [])
        tables[path.parent.name] = [
            {"label": row.get("label"), **{m: _value(row.get("metrics", {}).get(m)) for m in ("R1@0.5", "mIoU")}}
            for row in rows
        ]
    return tables


def _value(cell: object) -> float | None:
    """A metric cell is a number or ``{"value": ...}``."""
    return cell.get("value") if isinstance(cell, dict) else cell


def archive(report: Path, target: Path) -> None:
    """tar.gz of the report folder; images are left out when the archive would pass 15 MB."""
    if not report.exists():
        return
    for with_images in (True, False):
        with tarfile.open(target, "w:gz") as tar:
            for path in sorted(report.rglob("*")):
                if path.is_file() and (with_images or path.suffix.lower() not in (".png", ".jpg", ".gif", ".mp4")):
                    tar.add(path, arcname=str(path.relative_to(report.parent)))
        if target.stat().st_size <= ARCHIVE_LIMIT:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="gpu-check")
    parser.add_argument("--only", default=None, help="one notebook (stem or number), for a dry run")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/matr-gpu-check"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--archive", type=Path, default=None)
    args = parser.parse_args()
    limit = float(os.environ.get("STAGE_LIMIT_S", "400")) - RESERVE_S
    report = args.workdir / "report"
    series = run_series(args.profile, report, args.workdir / "runs", args.only, limit)
    timings_file = report / "timings.json"
    result = {
        "profile": args.profile,
        "only": args.only,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not measured: no GPU on this machine",
        "torch": torch.__version__,
        "platform": platform.platform(),
        "limit_s": round(limit, 1),
        **series,
        "notebooks": json.loads(timings_file.read_text()) if timings_file.exists() else {},
        "tables": table_numbers(report / "artifacts"),
        "note": "a check that the series runs headless on a GPU: few epochs, one seed; not a result",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    if args.archive is not None:
        archive(report, args.archive)
    print(json.dumps({k: result[k] for k in ("profile", "gpu", "rc", "finished", "seconds")}))


if __name__ == "__main__":
    main()
