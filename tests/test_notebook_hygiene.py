"""Committed notebooks are clean sources: no outputs, one ``parameters`` cell of plain literals, kernel python3.

Executed copies belong in ``reports/notebooks/``; the ``notebooks/`` folder holds only stripped
sources in the committed form of ``tools/notebook_hygiene.py`` (what the nbstripout git filter of
``.gitattributes`` leaves), so that running and saving a notebook in JupyterLab leaves git clean:
checked here in a scratch repository, with the edits JupyterLab makes on save. The checks are
functions returning the problems they find, so that they are themselves tested on a clean and a
dirty notebook.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from matr.reporting.artifacts import EXPECTED_ARTIFACTS
from matr.reporting.runner import NOTEBOOK_NAME, NOTEBOOK_PARAMETERS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from notebook_hygiene import KERNELSPEC, committed_form  # noqa: E402

NOTEBOOKS_DIR = ROOT / "notebooks"
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
    """Anything but one ``parameters`` cell of ``name: type = literal`` lines declaring NOTEBOOK_PARAMETERS.

    A notebook may declare parameters of its own after the series' (``00_try_matr``: the videos).
    """
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
    series = {name: kind for name, kind in declared.items() if name in wanted}
    if series != wanted:
        problems.append(f"series parameters {_names(series)}; expected {_names(wanted)}")
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
    """The series of the report (matr.reporting.artifacts.EXPECTED_ARTIFACTS): fails until the notebooks land."""
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


@pytest.mark.parametrize("path", COMMITTED, ids=lambda path: path.stem)
def test_committed_notebook_is_in_the_form_the_git_filter_leaves(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert committed_form(text) == text, f"run: python tools/notebook_hygiene.py normalize {path}"


def test_notebooks_go_through_nbstripout_and_executed_copies_do_not() -> None:
    attributes = (ROOT / ".gitattributes").read_text(encoding="utf-8").splitlines()
    assert "notebooks/*.ipynb filter=nbstripout diff=ipynb" in attributes
    assert not any(line.startswith(("*.ipynb", "reports/")) for line in attributes)


# --- Saving in JupyterLab leaves git clean -------------------------------------------------------


def saved_by_jupyterlab(text: str) -> str:
    """What JupyterLab 4 writes after running a notebook: outputs, counts, widget state, its metadata."""
    notebook = json.loads(text)
    for count, cell in enumerate((c for c in notebook["cells"] if c["cell_type"] == "code"), start=1):
        cell["execution_count"] = count
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["ran\n"]}]
        cell["metadata"]["scrolled"] = True
    for cell in notebook["cells"]:
        cell["id"] = f"a1b2c3-{id(cell)}"
    notebook["metadata"]["kernelspec"] = dict(KERNELSPEC)
    notebook["metadata"]["language_info"] = {
        "codemirror_mode": {"name": "ipython", "version": 3},
        "file_extension": ".py",
        "mimetype": "text/x-python",
        "name": "python",
        "nbconvert_exporter": "python",
        "pygments_lexer": "ipython3",
        "version": "3.11.7",
    }
    notebook["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


SCRATCH = (COMMITTED[0], COMMITTED[-1])  # every git filter run starts Python: two notebooks stand for all


@pytest.fixture(scope="module")
def scratch_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository holding the committed notebooks, with the filter installed as the README says."""
    repo = tmp_path_factory.mktemp("repo")
    (repo / "notebooks").mkdir()
    for path in SCRATCH:
        shutil.copy(path, repo / "notebooks" / path.name)
    shutil.copy(ROOT / ".gitattributes", repo / ".gitattributes")
    _git(repo, "init", "--quiet")
    subprocess.run([sys.executable, str(ROOT / "tools" / "notebook_hygiene.py"), "install"], cwd=repo, check=True)
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "notebooks")
    return repo


def test_committing_a_notebook_stores_it_unchanged(scratch_repo: Path) -> None:
    for path in SCRATCH:
        stored = _git(scratch_repo, "show", f"HEAD:notebooks/{path.name}")
        assert stored == path.read_text(encoding="utf-8"), path.name


def test_running_and_saving_in_jupyterlab_leaves_git_clean(scratch_repo: Path) -> None:
    """No change to diff or commit. (``git status`` lists a file whose size changed until ``git add``: git's stat check.)"""
    for path in sorted((scratch_repo / "notebooks").glob("*.ipynb")):
        path.write_text(saved_by_jupyterlab(path.read_text(encoding="utf-8")), encoding="utf-8")
    assert _git(scratch_repo, "diff", "--name-only") == ""
    _git(scratch_repo, "add", "notebooks")
    assert _git(scratch_repo, "status", "--porcelain") == ""


def test_an_edited_source_still_shows_as_changed(scratch_repo: Path) -> None:
    path = scratch_repo / "notebooks" / SCRATCH[0].name
    notebook = json.loads(path.read_text(encoding="utf-8"))
    notebook["cells"][0]["source"] = ["# an edit\n"]
    path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    assert _git(scratch_repo, "diff", "--name-only").split() == [f"notebooks/{path.name}"]


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


def test_checks_pass_notebook_parameters_after_the_series_ones() -> None:
    notebook = _notebook(CLEAN_PARAMETERS + 'query: str = "../examples/query.mp4"\ntop_k: int = 5\n')
    assert parameter_problems(notebook) == []


def test_checks_find_outputs_and_execution_counts() -> None:
    notebook = _notebook(CLEAN_PARAMETERS, outputs=[{"output_type": "stream", "text": "1"}], execution_count=3)
    assert output_problems(notebook) == ["cell 1 has outputs", "cell 1 has execution count 3"]


@pytest.mark.parametrize(
    "parameters, problem",
    [
        (CLEAN_PARAMETERS + "epochs: int = 3 * 2\n", "not a `name: type = literal` line"),
        (CLEAN_PARAMETERS.replace('device: str = "auto"\n', ""), "expected"),
        (CLEAN_PARAMETERS.replace("seed: int = 0", "seed: int = 2 * 3"), "not a `name: type = literal` line"),
        (CLEAN_PARAMETERS.replace("seed: int = 0", "seed = 0"), "not a `name: type = literal` line"),
        (CLEAN_PARAMETERS.replace("seed: int = 0", 'seed: int = "0"'), "not of the annotated type"),
    ],
    ids=["extra-derived", "missing", "derived", "unannotated", "mistyped"],
)
def test_checks_find_parameter_cells_that_are_not_the_series_literals(parameters: str, problem: str) -> None:
    problems = parameter_problems(_notebook(parameters))
    assert problems and problem in problems[0]


def test_checks_find_a_second_parameters_cell_and_another_kernel() -> None:
    notebook = _notebook(CLEAN_PARAMETERS, metadata={"tags": ["parameters"]})
    notebook["metadata"]["kernelspec"]["name"] = "matr-env"
    assert parameter_problems(notebook) == ["2 cells are tagged 'parameters'; expected exactly one"]
    assert kernel_problems(notebook) == ["kernelspec name is 'matr-env'; expected 'python3'"]
