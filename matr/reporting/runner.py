"""Run the notebook series headless with papermill: the engine of ``make report`` / ``matr report``.

Notebooks live in ``notebooks/NN_name.ipynb`` and run in the order of ``NN``. Each has exactly one
cell tagged ``parameters`` holding these plain, type-annotated literals (:data:`NOTEBOOK_PARAMETERS`)::

    profile: str = "smoke"                    # run profile (matr.experiments.profiles)
    workdir: str = "../runs/smoke"            # large intermediate data (features, checkpoints), shared
    artifacts: str = "../reports/artifacts"   # what the report needs: artifacts/<notebook stem>/
    seed: int = 0
    device: str = "auto"

and writes its results into ``<artifacts>/<notebook stem>/`` following the ARTIFACT CONTRACT of
:mod:`matr.reporting.artifacts`. A run of :func:`run_notebooks` into ``out_dir`` leaves::

    out_dir/notebooks/NN_name.ipynb           executed copy: the last successful run of each notebook
    out_dir/notebooks/failed/NN_name.ipynb    the last failed run, kept apart (with papermill's banner)
    out_dir/timings.json                      {stem: {"seconds", "cells", "finished", "profile"}}, merged per run

:func:`make_report` runs a selection of the series for a profile (default :data:`DEFAULT_PROFILE`,
the same for ``make report`` and ``matr report``) and builds the report.

Quiet and informative: the kernels run with :data:`HEADLESS_ENV` (progress bars inside the
notebooks are off, so executed copies hold no flood of bar refreshes and no widget state); with
``progress=True`` the runner shows one bar per notebook naming the running cell, the elapsed time
and the time left by the last run's per-cell timings (:mod:`matr.reporting.progress`). Each
executed copy is cleaned before it is kept (:func:`matr.reporting.executed.clean_executed`).

Kernel: papermill starts the Jupyter kernel named ``python3``. jupyter_client replaces a kernelspec
command of ``python``/``python3`` by the interpreter running papermill, so inside the project's
virtual environment (``.venv/share/jupyter/kernels/python3``, installed with ipykernel) the
notebooks run on ``.venv/bin/python``. A kernelspec that names another interpreter (say a user-level
``~/.local/share/jupyter/kernels/python3``) is logged as a warning before anything runs.

CI (pytest-notebook): :func:`prepare_notebook` writes a copy of a notebook with the smoke profile's
parameters injected by papermill (``prepare_only=True``, absolute paths), which the
``nb_regression`` fixture then executes with ``exec_cwd`` set to the source notebook's folder and
``diff_ignore`` set to :data:`NB_DIFF_IGNORE`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import papermill
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from matr.experiments.profiles import get_profile
from matr.io import write_json
from matr.reporting.artifacts import read_json
from matr.reporting.executed import MEDIA_SUFFIX, cell_durations, clean_executed
from matr.reporting.progress import ENGINE, NotebookProgress, cell_seconds, format_seconds
from matr.reporting.report import build_report
from matr.reporting.sections import EXECUTED_DIR, TIMINGS_FILE

logger = logging.getLogger(__name__)

NOTEBOOK_PARAMETERS: Mapping[str, type] = MappingProxyType(
    {"profile": str, "workdir": str, "artifacts": str, "seed": int, "device": str}
)
NOTEBOOK_NAME = re.compile(r"^(?P<number>\d+)_(?P<name>\w+)\.ipynb$")
FAILED_DIR = "failed"
KERNEL = "python3"
# No kernel-app chatter on the console, not even the ERROR line of a kernel interrupted while it shuts down.
KERNEL_ARGUMENTS: tuple[str, ...] = ("--IPKernelApp.log_level=CRITICAL",)
DEFAULT_PROFILE = "demo"
HEADLESS_ENV: Mapping[str, str] = MappingProxyType({"TQDM_DISABLE": "1", "TQDM_MININTERVAL": "30"})
NB_DIFF_IGNORE: tuple[str, ...] = (
    "/cells/*/outputs",
    "/cells/*/execution_count",
    "/metadata/language_info",
    "/metadata/widgets",
)
_INJECTED_TAG = "injected-parameters"
_ERROR_TAG = "papermill-error-cell-tag"


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the exception."""

    def __init__(self, message: str, *, notebook: Path, cell_index: int | None, executed_copy: Path | None):
        super().__init__(message)
        self.notebook = notebook
        self.cell_index = cell_index
        self.executed_copy = executed_copy


@dataclass(frozen=True)
class NotebookRun:
    """One successful execution: the source notebook, its executed copy and the wall-clock seconds it took."""

    notebook: Path
    executed: Path
    seconds: float


# --- Finding and selecting notebooks ------------------------------------------------------------


def discover_notebooks(folder: str | os.PathLike) -> list[Path]:
    """The ``NN_name.ipynb`` notebooks of ``folder``, ordered by ``NN``; other files are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"notebook folder {folder} does not exist")
    found = sorted((p for p in folder.iterdir() if NOTEBOOK_NAME.match(p.name)), key=_number)
    numbers = [_number(p) for p in found]
    duplicated = sorted({p.name for p in found if numbers.count(_number(p)) > 1})
    if duplicated:
        raise ValueError(f"notebooks in {folder} share a number: {duplicated}")
    if not found:
        raise ValueError(f"no NN_name.ipynb notebooks in {folder}")
    return found


def _number(path: Path) -> int:
    return int(NOTEBOOK_NAME.match(path.name)["number"])


def select(
    notebooks: Sequence[Path], from_: str | int | None = None, only: str | int | Sequence[str | int] | None = None
) -> list[Path]:
    """Part of the series: from ``from_`` to the end, or just ``only`` (in series order).

    A notebook is named by its number (``5``, ``"05"``), its stem (``"05_table2_dual_alignment"``)
    or its name without the number (``"table2_dual_alignment"``); ``only`` may be a comma-separated
    string. Unknown names raise ``ValueError`` listing the notebooks there are.
    """
    if from_ is not None and only is not None:
        raise ValueError("give either from_ or only, not both")
    if from_ is not None:
        start = notebooks.index(_resolve(from_, notebooks))
        return list(notebooks[start:])
    if only is not None:
        keys = only.split(",") if isinstance(only, str) else [only] if isinstance(only, int) else only
        chosen = {_resolve(key, notebooks) for key in keys}
        return [nb for nb in notebooks if nb in chosen]
    return list(notebooks)


def _resolve(key: str | int, notebooks: Sequence[Path]) -> Path:
    text = str(key).strip()
    for notebook in notebooks:
        match = NOTEBOOK_NAME.match(notebook.name)
        if (text.isdigit() and int(text) == int(match["number"])) or text in (notebook.stem, match["name"]):
            return notebook
    available = ", ".join(nb.stem for nb in notebooks)
    raise ValueError(f"no notebook {text!r} in the series; available: {available}")


# --- Parameters ---------------------------------------------------------------------------------


def notebook_parameters(
    profile: str, workdir: str | os.PathLike, artifacts: str | os.PathLike, *, seed: int = 0, device: str = "auto"
) -> dict[str, Any]:
    """The parameters of :data:`NOTEBOOK_PARAMETERS`, paths made absolute (notebooks run in their own folder)."""
    return {
        "profile": profile,
        "workdir": str(Path(workdir).resolve()),
        "artifacts": str(Path(artifacts).resolve()),
        "seed": int(seed),
        "device": device,
    }


def check_parameters(notebook: Path, parameters: Mapping[str, Any]) -> None:
    """Refuse parameters ``notebook`` does not declare in its ``parameters`` cell (papermill only warns)."""
    declared = papermill.inspect_notebook(str(notebook))
    if not declared:
        raise ValueError(f"{notebook}: no cell tagged 'parameters' declares any parameter")
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(f"{notebook}: unknown parameter(s) {unknown}; the notebook declares {sorted(declared)}")


# --- Running ------------------------------------------------------------------------------------


def run_notebooks(
    notebooks: Sequence[Path],
    out_dir: str | os.PathLike,
    parameters: Mapping[str, Any],
    *,
    kernel: str = KERNEL,
    progress: bool = False,
    log_output: bool = False,
) -> list[NotebookRun]:
    """Execute ``notebooks`` in order with ``parameters``; stop at the first that fails.

    Every notebook's parameters are checked before any runs. Each runs with its own folder as the
    working directory (paths in ``parameters`` should be absolute: :func:`notebook_parameters`),
    into a temporary file that becomes ``out_dir/notebooks/NAME.ipynb`` (cleaned) only on
    success; a failed run goes to ``out_dir/notebooks/failed/NAME.ipynb`` and raises
    :class:`NotebookFailed`. ``progress``: one bar per notebook with the running cell, elapsed time
    and an estimate from ``timings.json``; ``log_output``: notebook output into this module's logger.
    """
    notebooks = [Path(notebook).resolve() for notebook in notebooks]  # papermill changes directory while it runs
    out_dir = Path(out_dir).resolve()
    with contextlib.nullcontext() if log_output else _quiet(logging.getLogger("papermill")):
        for notebook in notebooks:
            check_parameters(notebook, parameters)
        return _run_series(notebooks, out_dir, parameters, kernel=kernel, progress=progress, log_output=log_output)


def _run_series(
    notebooks: Sequence[Path],
    out_dir: Path,
    parameters: Mapping[str, Any],
    *,
    kernel: str,
    progress: bool,
    log_output: bool,
) -> list[NotebookRun]:
    _check_kernel(kernel)
    executed_dir = out_dir / EXECUTED_DIR
    executed_dir.mkdir(parents=True, exist_ok=True)
    timings = read_json(out_dir / TIMINGS_FILE) or {}
    _log_estimate(notebooks, timings)
    runs = []
    with _environment(HEADLESS_ENV):
        for index, notebook in enumerate(notebooks, start=1):
            bar = NotebookProgress(notebook.stem, (index, len(notebooks)), cell_seconds(timings, notebook.stem))
            try:
                run = _run_one(
                    notebook,
                    executed_dir,
                    parameters,
                    kernel=kernel,
                    progress=bar if progress else None,
                    log_output=log_output,
                )
            finally:
                bar.close()
            _record_timing(out_dir / TIMINGS_FILE, run, parameters)
            runs.append(run)
    return runs


def _log_estimate(notebooks: Sequence[Path], timings: Mapping[str, Any]) -> None:
    known = [float(timings[nb.stem]["seconds"]) for nb in notebooks if "seconds" in timings.get(nb.stem, {})]
    if known:
        logger.info(
            "running %d notebook(s); the last run of %d of them took %s (timings.json)",
            len(notebooks),
            len(known),
            format_seconds(sum(known)),
        )


def _run_one(
    notebook: Path,
    executed_dir: Path,
    parameters: Mapping[str, Any],
    *,
    kernel: str,
    progress: NotebookProgress | None,
    log_output: bool,
) -> NotebookRun:
    running = executed_dir / f".{notebook.stem}.running.ipynb"
    failed = executed_dir / FAILED_DIR / notebook.name
    logger.info("running %s", notebook)
    start = time.perf_counter()
    try:
        _papermill(
            notebook,
            running,
            parameters,
            kernel,
            engine_name=ENGINE,
            extra_arguments=KERNEL_ARGUMENTS,
            cwd=str(notebook.parent),
            log_output=log_output,
            progress=progress,
        )
    except BaseException as error:
        kept = _keep_failed(running, failed)
        if isinstance(error, Exception):
            raise _failure(notebook, error, kept) from error
        raise
    seconds = time.perf_counter() - start
    executed = executed_dir / notebook.name
    media = executed_dir / f"{notebook.stem}{MEDIA_SUFFIX}"
    shutil.rmtree(media, ignore_errors=True)  # the videos of the last run
    clean_executed(running, media)
    os.replace(running, executed)
    failed.unlink(missing_ok=True)
    logger.info("%s finished in %.1f s", notebook.name, seconds)
    return NotebookRun(notebook=notebook, executed=executed, seconds=seconds)


def _keep_failed(running: Path, failed: Path) -> Path | None:
    if not running.exists():
        return None
    failed.parent.mkdir(parents=True, exist_ok=True)
    os.replace(running, failed)
    return failed


def _failure(notebook: Path, error: Exception, kept: Path | None) -> NotebookFailed:
    copy = f"; failed copy: {kept}" if kept else ""
    if not isinstance(error, papermill.PapermillExecutionError):
        return NotebookFailed(
            f"notebook {notebook.name} failed: {type(error).__name__}: {error}{copy}",
            notebook=notebook,
            cell_index=None,
            executed_copy=kept,
        )
    index = _source_cell_index(error.cell_index, kept)
    first_line = next((line for line in error.source.splitlines() if line.strip()), "")
    message = (
        f"notebook {notebook.name} failed at cell {index} (0-based, in {notebook}; In [{error.exec_count}] "
        f"in the executed copy){copy}: {error.ename}: {error.evalue}\n    cell starts: {first_line}"
    )
    return NotebookFailed(message, notebook=notebook, cell_index=index, executed_copy=kept)


def _source_cell_index(executed_index: int, executed_copy: Path | None) -> int:
    """papermill's index counts its injected-parameters cell; the source notebook's index does not."""
    if executed_copy is None:
        return executed_index
    cells = json.loads(executed_copy.read_text(encoding="utf-8"))["cells"]
    cells = [cell for cell in cells if _ERROR_TAG not in cell.get("metadata", {}).get("tags", [])]
    injected = sum(_INJECTED_TAG in cell.get("metadata", {}).get("tags", []) for cell in cells[:executed_index])
    return executed_index - injected


def _record_timing(path: Path, run: NotebookRun, parameters: Mapping[str, Any]) -> None:
    """Merge this run's seconds into ``timings.json``, keeping the other notebooks' entries."""
    timings = read_json(path) or {}
    timings[run.notebook.stem] = {
        "seconds": round(run.seconds, 3),
        "cells": cell_durations(run.executed),
        "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "profile": parameters.get("profile"),
    }
    write_json(path, timings)


def _check_kernel(kernel: str) -> None:
    try:
        spec = KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise ValueError(
            f"no Jupyter kernel named {kernel!r}: install ipykernel in this environment (pip install -e '.[notebooks]')"
        ) from None
    same = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2]), sys.executable}
    if spec.argv and spec.argv[0] not in same:
        logger.warning(
            "kernel %r runs %s, not this interpreter (%s): the notebooks will import matr from there",
            kernel,
            spec.argv[0],
            sys.executable,
        )


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """``logger`` at WARNING at least while the series runs (papermill logs every file it opens at INFO)."""
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables the kernels inherit (without overriding the user's), then restore."""
    added = [name for name in values if name not in os.environ]
    os.environ.update({name: values[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def prepare_notebook(
    notebook: Path, dest_dir: str | os.PathLike, parameters: Mapping[str, Any], *, kernel: str = KERNEL
) -> Path:
    """Write ``dest_dir/NAME.ipynb``: ``notebook`` with ``parameters`` injected, not executed (for pytest-notebook)."""
    check_parameters(notebook, parameters)
    prepared = Path(dest_dir) / notebook.name
    prepared.parent.mkdir(parents=True, exist_ok=True)
    _papermill(notebook, prepared, parameters, kernel, prepare_only=True)
    return prepared


def _papermill(notebook: Path, output: Path, parameters: Mapping[str, Any], kernel: str, **options: Any) -> None:
    """papermill's ``execute_notebook`` without its own progress bar (``options``: its other arguments)."""
    papermill.execute_notebook(
        str(notebook), str(output), parameters=dict(parameters), kernel_name=kernel, progress_bar=False, **options
    )


# --- The whole job ------------------------------------------------------------------------------


def make_report(
    profile: str = DEFAULT_PROFILE,
    *,
    notebooks_dir: str | os.PathLike = "notebooks",
    out_dir: str | os.PathLike = "reports",
    workdir: str | os.PathLike | None = None,
    seed: int | None = None,
    device: str | None = None,
    from_: str | int | None = None,
    only: str | int | Sequence[str | int] | None = None,
    progress: bool = False,
) -> Path:
    """Run the series (or the part ``from_``/``only`` names) under ``profile`` and build the report.

    Artifacts go to ``out_dir/artifacts``, intermediate data to ``workdir`` (default
    ``runs/<profile>``); ``seed`` and ``device`` default to the profile's. After a partial run the
    report is built from all artifacts present, noting those not produced. Returns ``out_dir/README.md``.
    """
    settings = get_profile(profile)
    out_dir = Path(out_dir)
    parameters = notebook_parameters(
        profile,
        workdir or Path("runs") / profile,
        out_dir / "artifacts",
        seed=settings.seed if seed is None else seed,
        device=settings.device if device is None else device,
    )
    notebooks = select(discover_notebooks(notebooks_dir), from_=from_, only=only)
    run_notebooks(notebooks, out_dir, parameters, progress=progress)
    partial = from_ is not None or only is not None
    return build_report(out_dir, out_dir / "artifacts", profile, allow_missing=partial)
