"""The notebook series, executed top to bottom under the ``smoke`` profile with pytest-notebook (CI).

How the parameters reach the notebooks: :func:`matr.reporting.runner.prepare_notebook` injects
``notebook_parameters("smoke", workdir, artifacts)`` (absolute paths into module-scoped temporary
folders) into a copy of each notebook with papermill's ``prepare_only=True``, exactly as
``matr report`` does before executing; the ``nb_regression`` fixture then executes that copy with
``exec_cwd`` = ``notebooks/`` and ``diff_ignore`` = :data:`matr.reporting.runner.NB_DIFF_IGNORE` (committed
notebooks carry no outputs to compare with, which ``tests/test_notebook_hygiene.py`` enforces).

The notebooks run in series order and share one working folder: later notebooks reuse the features
and checkpoints earlier ones wrote, as in a real run, so a failing notebook also fails those after
it. Each notebook must leave the artifacts :data:`matr.reporting.artifacts.EXPECTED_ARTIFACTS` lists for it,
and the report must build from the whole set. About 3-6 minutes on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from matr.experiments import TABLES
from matr.reporting.artifacts import EXPECTED_ARTIFACTS, missing_artifacts
from matr.reporting.report import build_report
from matr.reporting.runner import (
    HEADLESS_ENV,
    NB_DIFF_IGNORE,
    discover_notebooks,
    notebook_parameters,
    prepare_notebook,
)

pytestmark = pytest.mark.slow

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = discover_notebooks(NOTEBOOKS_DIR)
CELL_TIMEOUT_S = 900  # per cell; the longest smoke cell trains two runs, seconds to two minutes
# One intra-op thread per kernel: the smoke model's ops are tiny, and on a shared 2-core machine
# PyTorch's second thread makes them up to 60x slower (measured: 0.06 s vs 4 s per smoke epoch).
KERNEL_ENV = {**HEADLESS_ENV, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("series")
    return {
        "workdir": root / "work",
        "report": root / "report",
        "artifacts": root / "report" / "artifacts",
        "prepared": root / "prepared",
    }


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_under_smoke_and_writes_its_artifacts(
    notebook: Path, series: dict[str, Path], nb_regression: Any
) -> None:
    parameters = notebook_parameters("smoke", series["workdir"], series["artifacts"])
    prepared = prepare_notebook(notebook, series["prepared"], parameters)
    nb_regression.diff_ignore = NB_DIFF_IGNORE
    nb_regression.exec_cwd = str(notebook.parent)
    nb_regression.exec_timeout = CELL_TIMEOUT_S
    nb_regression.exec_env = KERNEL_ENV
    nb_regression.check(str(prepared))
    expected = {notebook.stem: EXPECTED_ARTIFACTS.get(notebook.stem, ("provenance.json",))}
    assert missing_artifacts(series["artifacts"], expected) == {}


def test_report_builds_from_the_artifacts_of_the_series(series: dict[str, Path]) -> None:
    assert missing_artifacts(series["artifacts"]) == {}
    text = build_report(series["report"], series["artifacts"], "smoke").read_text(encoding="utf-8")
    assert text.startswith("**Backbone:** `random-init")
    assert all(spec.title in text for spec in TABLES.values())
    assert "Not produced" not in text
    assert (series["report"] / "report.html").is_file()
