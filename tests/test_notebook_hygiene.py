"""Committed notebooks are clean sources: no outputs, one ``parameters`` cell of plain literals, kernel python3.

Executed copies belong in ``reports/notebooks/``; the ``notebooks/`` folder holds only stripped
sources (nbstripout, keeping tags and kernelspec). The checks are functions returning the problems
they find, so that they are themselves tested on a clean and a dirty notebook.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from matr.notebooks import NOTEBOOK_NAME, NOTEBOOK_PARAMETERS
from matr.report import EXPECTED_ARTIFACTS

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
COMMITTED = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
LITERAL_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _tags(cell: dict[str, Any]) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def output_problems(notebook: dict[str, Any]) -> list[str]:
    """Outputs, execution counts and marks of an executed copy (papermill metadata, injected cell)."""
    problems = []
    for index, cell in enumerate(notebook["cells"]):
        if cell.get("outputs"):
            problems.append(f"cell {index} has outputs")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {index} has execution count {cell['execution_count']}")
        if "injected-parameters" in _tags(cell):
            problems.append(f"cell {index} is papermill's injected-parameters cell")
    if "papermill" in notebook.get("metadata", {}):
        problems.append("notebook metadata holds papermill's record of an execution")
    return problems


def parameter_problems(notebook: dict[str, Any]) -> list[str]:
    """Anything but exactly one ``parameters`` cell of ``name: type = literal`` lines naming NOTEBOOK_PARAMETERS."""
    cells = [cell for cell in notebook["cells"] if "parameters" in _tags(cell)]
    if len(cells) != 1:
        return [f"{len(cells)} cells are tagged 'parameters'; expected exactly one"]
    source = "".join(cells[0]["source"]) if isinstance(cells[0]["source"], list) else cells[0]["source"]
    problems, declared = [], {}
    for statement in ast.parse(source).body:
        line = ast.get_source_segment(source, statement)
        if not (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(statement.annotation, ast.Name)
            and isinstance(statement.value, ast.Constant)
        ):
            problems.append(f"not a `name: type = literal` line: {line!r}")
            continue
        expected = LITERAL_TYPES.get(statement.annotation.id)
        if type(statement.value.value) is not expected:
            problems.append(f"{line!r}: the literal is not of the annotated type")
        declared[statement.target.id] = expected
    wanted = dict(NOTEBOOK_PARAMETERS)
    if declared != wanted:
        problems.append(f"parameters {_names(declared)}; expected {_names(wanted)}")
    return problems


def _names(parameters: dict[str, Any]) -> dict[str, str]:
    return {name: getattr(kind, "__name__", str(kind)) for name, kind in sorted(parameters.items())}


def kernel_problems(notebook: dict[str, Any]) -> list[str]:
    name = notebook.get("metadata", {}).get("kernelspec", {}).get("name")
    return [] if name == "python3" else [f"kernelspec name is {name!r}; expected 'python3'"]


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# --- The committed notebooks --------------------------------------------------------------------


def test_planned_notebooks_are_all_committed() -> None:
    """The series of the report (matr.report.EXPECTED_ARTIFACTS): fails until the notebooks land."""
    committed = {path.stem for path in COMMITTED}
    missing = [stem for stem in EXPECTED_ARTIFACTS if stem not in committed]
    assert not missing, f"planned notebooks missing from {NOTEBOOKS_DIR}: {missing}"


def test_committed_notebook_names_are_numbered() -> None:
    misnamed = [path.name for path in COMMITTED if not NOTEBOOK_NAME.match(path.name)]
    assert not misnamed, f"notebooks not named NN_name.ipynb (the runner would skip them): {misnamed}"


@pytest.mark.parametrize("path", COMMITTED, ids=lambda path: path.stem)
def test_committed_notebook_carries_no_outputs(path: Path) -> None:
    assert output_problems(_load(path)) == []


@pytest.mark.parametrize("path", COMMITTED, ids=lambda path: path.stem)
def test_committed_notebook_declares_the_series_parameters_as_literals(path: Path) -> None:
    assert parameter_problems(_load(path)) == []


@pytest.mark.parametrize("path", COMMITTED, ids=lambda path: path.stem)
def test_committed_notebook_runs_on_the_python3_kernel(path: Path) -> None:
    assert kernel_problems(_load(path)) == []


# --- The checks themselves ----------------------------------------------------------------------

CLEAN_PARAMETERS = (
    'profile: str = "smoke"\nworkdir: str = "../runs/smoke"\nartifacts: str = "../reports/artifacts"\n'
    'seed: int = 0  # seeds everything\ndevice: str = "auto"\n'
)


def _notebook(parameters: str, **code_cell: Any) -> dict[str, Any]:
    cell = {"cell_type": "code", "metadata": {}, "source": "x = 1", "outputs": [], "execution_count": None}
    return {
        "metadata": {"kernelspec": {"name": "python3"}},
        "cells": [
            {
                "cell_type": "code",
                "metadata": {"tags": ["parameters"]},
                "source": parameters,
                "outputs": [],
                "execution_count": None,
            },
            {**cell, **code_cell},
        ],
    }


def test_checks_pass_a_clean_notebook() -> None:
    notebook = _notebook(CLEAN_PARAMETERS)
    assert output_problems(notebook) + parameter_problems(notebook) + kernel_problems(notebook) == []


def test_checks_find_outputs_and_execution_counts() -> None:
    notebook = _notebook(CLEAN_PARAMETERS, outputs=[{"output_type": "stream", "text": "1"}], execution_count=3)
    assert output_problems(notebook) == ["cell 1 has outputs", "cell 1 has execution count 3"]


@pytest.mark.parametrize(
    "parameters, problem",
    [
        (CLEAN_PARAMETERS + "epochs: int = 3\n", "expected"),
        (CLEAN_PARAMETERS.replace('device: str = "auto"\n', ""), "expected"),
        (CLEAN_PARAMETERS.replace("seed: int = 0", "seed: int = 2 * 3"), "not a `name: type = literal` line"),
        (CLEAN_PARAMETERS.replace("seed: int = 0", "seed = 0"), "not a `name: type = literal` line"),
        (CLEAN_PARAMETERS.replace("seed: int = 0", 'seed: int = "0"'), "not of the annotated type"),
    ],
    ids=["extra", "missing", "derived", "unannotated", "mistyped"],
)
def test_checks_find_parameter_cells_that_are_not_the_series_literals(parameters: str, problem: str) -> None:
    problems = parameter_problems(_notebook(parameters))
    assert problems and problem in problems[0]


def test_checks_find_a_second_parameters_cell_and_another_kernel() -> None:
    notebook = _notebook(CLEAN_PARAMETERS, metadata={"tags": ["parameters"]})
    notebook["metadata"]["kernelspec"]["name"] = "matr-env"
    assert parameter_problems(notebook) == ["2 cells are tagged 'parameters'; expected exactly one"]
    assert kernel_problems(notebook) == ["kernelspec name is 'matr-env'; expected 'python3'"]
