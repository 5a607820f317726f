"""Driver of ``benchmarks/gpu/run.sh``: every GPU stage of issue 11, each independent and time-limited.

Stages, in order (a stage that fails or runs out of time is recorded and the next one runs):

* ``align``: ALIGN's GPU comparison (Triton kernels against pysdtw-CUDA, pytorch-softdtw-cuda and
  the cost matmul), ``benchmarks/bench_align.py --gpu``;
* ``model``: ``benchmarks/bench_model.py --gpu-only --compile``: the paper preset at B = 1200 in
  bf16, eager and compiled (steps/s, pairs/s, peak memory, alignment share, MFU);
* ``loader``: ``benchmarks/bench_loader.py``: pairs/s of the training data loader, 0 / 4 / 8 workers;
* ``inference``: ``benchmarks/bench_inference.py`` on the GPU (localize latency, search videos/s);
* ``features``: FEAT's GPU tests (device resolution, CLIP encoding in bf16 on the GPU);
* ``gpu_check``: the whole notebook series headless under the ``gpu-check`` profile
  (``benchmarks/gpu/gpu_check.py``), given whatever time is left.

Everything lands in ``--out`` as at most 8 files (what the device tool brings back): ``summary.json``
(machine, wheel install, every stage's exit code, seconds and log tail), ``logs.txt`` (all logs),
and the stages' JSON files (``bench_align_gpu.json``, ``bench_model.json``, ``bench_loader.json``,
``bench_inference.json``, ``gpu_check.json``) plus ``gpu_check_report.tar.gz``. The JSON files are
also copied to ``benchmarks/results/gpu/``. ``--dry-run`` runs the same stages on the CPU at tiny
sizes, to know the script works before the one GPU run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "gpu"
LOG_TAIL = 3000


@dataclass(frozen=True)
class Stage:
    """One step of the run: a command, its time limit and the JSON file it writes (if any)."""

    name: str
    limit_s: int | None  # None: whatever the budget has left
    command: list[str]
    output: str | None = None


def stages(out: Path, dry_run: bool, notebooks: str | None = None) -> list[Stage]:
    """The stages of a GPU run, or their tiny CPU versions for ``--dry-run``; ``notebooks``: part of the series."""
    py = sys.executable
    loader = ["--workers", "0,2", "--videos", "40", "--pairs", "200", "--batch", "50"] if dry_run else []
    inference = ["--quick", "--videos", "20", "--presets", "smoke", "--batch-sizes", "16"] if dry_run else []
    check = ["--profile", "smoke", "--only", "01_data_curation"] if dry_run else []
    check += ["--only", notebooks] if notebooks and not dry_run else []
    return [
        Stage(
            "align",
            90,
            [py, "benchmarks/bench_align.py", "--gpu", "--vendor", ".gpu_vendor"]
            + ["--gpu-output", str(out / "bench_align_gpu.json"), "--rounds", "10"],
            "bench_align_gpu.json",
        ),
        Stage(
            "model",
            120,
            [py, "benchmarks/bench_model.py", "--gpu-only", "--compile", "--out", str(out / "bench_model.json")],
            "bench_model.json",
        ),
        Stage("loader", 45, [py, "benchmarks/bench_loader.py", *loader, "--out", str(out / "bench_loader.json")]),
        Stage(
            "inference",
            60,
            [py, "benchmarks/bench_inference.py", *inference, "--out", str(out / "bench_inference.json")],
        ),
        Stage(
            "features",
            45,
            [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_device.py", "tests/test_features.py"]
            + ["-k", "device or gpu or cuda or auto"],
        ),
        Stage(
            "gpu_check",
            None,
            [py, "benchmarks/gpu/gpu_check.py", *check, "--out", str(out / "gpu_check.json")]
            + ["--archive", str(out / "gpu_check_report.tar.gz")],
            "gpu_check.json",
        ),
    ]


def run_stage(stage: Stage, limit_s: float, log: Path) -> dict:
    """Run one stage under ``limit_s``; its output goes to ``log``. Returns its record for the summary."""
    started = time.perf_counter()
    with log.open("w") as file:
        env = {**os.environ, "STAGE_LIMIT_S": str(limit_s)}
        process = subprocess.Popen(
            stage.command, cwd=ROOT, stdout=file, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            rc, timed_out = process.wait(timeout=limit_s), False
        except subprocess.TimeoutExpired:  # end the stage and every process it started (benchmark workers)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            rc, timed_out = None, True
    text = log.read_text(errors="replace")
    return {
        "stage": stage.name,
        "command": " ".join(stage.command),
        "rc": rc,
        "ok": rc == 0,
        "timed_out": timed_out,
        "limit_s": round(limit_s, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "log_tail": text[-LOG_TAIL:],
    }


def machine() -> dict:
    """Python, torch, triton and GPU of this machine (never fails)."""
    info: dict = {"python": sys.version.split()[0], "platform": platform.platform(), "cpu_count": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.is_available()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none: no GPU on this machine"
        import triton

        info["triton"] = triton.__version__
    except Exception as error:  # noqa: BLE001 - the summary records whatever is missing
        info["error"] = repr(error)
    smi = shutil.which("nvidia-smi")
    if smi:
        info["nvidia_smi"] = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout.strip()
    return info


def fold_install(out: Path, summary: dict, logs: list[str]) -> None:
    """Move run.sh's wheel-install record into the summary and the log (fewer files in ``out``)."""
    record, log = out / "install.json", out / "install.log"
    if record.exists():
        summary["wheel_install"] = json.loads(record.read_text())
        record.unlink()
    if log.exists():
        logs.append(f"===== wheel install =====\n{log.read_text(errors='replace')}")
        log.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--budget", type=float, default=540.0, help="seconds for all stages together (default 540: a 600 s device call)"
    )
    parser.add_argument("--only", default=None, help="comma-separated stage names")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: check the script works")
    parser.add_argument("--notebooks", default=None, help="gpu_check: only these notebooks (comma-separated)")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + args.budget
    summary: dict = {"dry_run": args.dry_run, "machine": machine(), "budget_s": args.budget, "stages": []}
    logs: list[str] = []
    fold_install(out, summary, logs)
    chosen = set(args.only.split(",")) if args.only else None
    for stage in stages(out, args.dry_run, args.notebooks):
        left = deadline - time.perf_counter()
        if (chosen is not None and stage.name not in chosen) or left < 10:
            summary["stages"].append({"stage": stage.name, "skipped": "not chosen" if left >= 10 else "no time left"})
            continue
        log = out / f"{stage.name}.log"
        record = run_stage(stage, left if stage.limit_s is None else min(stage.limit_s, left), log)
        summary["stages"].append(record)
        logs.append(
            f"===== {stage.name} (rc {record['rc']}, {record['seconds']} s) =====\n{log.read_text(errors='replace')}"
        )
        log.unlink()
        print(f"{stage.name}: rc={record['rc']} timed_out={record['timed_out']} {record['seconds']} s", flush=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "logs.txt").write_text("\n".join(logs))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if not args.dry_run:
        RESULTS.mkdir(parents=True, exist_ok=True)
        for path in out.glob("*.json"):
            shutil.copy(path, RESULTS / path.name)


if __name__ == "__main__":
    main()
