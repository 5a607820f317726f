"""The notebook runner (matr.reporting.runner): selection, parameters, execution, progress, clean copies.

Runner tests write throwaway notebooks with nbformat and execute them on a real kernel (``python3``,
which jupyter_client resolves to the interpreter running the tests, i.e. ``.venv/bin/python``); each
kernel start costs about a second, so there are few of them.

How CI passes parameters to pytest-notebook: ``matr.reporting.runner.prepare_notebook`` injects the
smoke profile's parameters (``notebook_parameters("smoke", workdir=tmp/..., artifacts=tmp/...)``,
absolute paths) into a copy with papermill's ``prepare_only=True``; the ``nb_regression`` fixture
executes that copy with ``exec_cwd`` = the source notebook's folder and ``diff_ignore`` =
``matr.reporting.runner.NB_DIFF_IGNORE``. ``test_prepared_copy_runs_under_nb_regression`` pins this wiring.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from PIL import Image

from matr.postprocess import RankedSpan
from matr.reporting.executed import WIDGET_VIEW, clean_executed
from matr.reporting.progress import cell_label, format_seconds
from matr.reporting.runner import (
    DEFAULT_PROFILE,
    NB_DIFF_IGNORE,
    NotebookFailed,
    discover_notebooks,
    make_report,
    notebook_parameters,
    prepare_notebook,
    run_notebooks,
    select,
)
from matr.viewer import player_html

RANDOM_TAG = "random-init(seed=0)"


# --- Runner: finding and selecting notebooks (no kernel) ----------------------------------------

PARAMETERS_CELL = (
    'profile: str = "smoke"\nworkdir: str = "."\nartifacts: str = "."\nseed: int = 0\ndevice: str = "auto"'
)


def write_notebook(path: Path, *cells: str, parameters: str = PARAMETERS_CELL) -> Path:
    """A notebook with a markdown cell, a ``parameters`` cell, then code ``cells``."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters_cell = nbformat.v4.new_code_cell(parameters)
    parameters_cell.metadata["tags"] = ["parameters"]
    notebook.cells = [
        nbformat.v4.new_markdown_cell(f"# {path.stem}"),
        parameters_cell,
        *(nbformat.v4.new_code_cell(source) for source in cells),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


LOG_CELL = (
    "import os, sys\nfrom pathlib import Path\n"
    "with open(Path(workdir) / 'log.txt', 'a') as f:\n"
    "    f.write(f'{Path(os.getcwd()).name} {profile} {seed} {sys.executable}\\n')"
)


def _series(folder: Path, *names: str) -> list[Path]:
    return [write_notebook(folder / f"{name}.ipynb", LOG_CELL) for name in names]


def test_notebooks_are_discovered_in_numeric_order(tmp_path: Path) -> None:
    _series(tmp_path, "10_late", "02_early", "01_first")
    (tmp_path / "scratch.ipynb").write_text("{}")
    assert [p.name for p in discover_notebooks(tmp_path)] == ["01_first.ipynb", "02_early.ipynb", "10_late.ipynb"]


def test_select_by_number_stem_or_name(tmp_path: Path) -> None:
    series = _series(tmp_path, "01_data", "02_train", "03_table")
    assert select(series, from_="02") == series[1:]
    assert select(series, only="03_table,1") == [series[0], series[2]]
    assert select(series, only=["train"]) == [series[1]]
    with pytest.raises(ValueError, match="no notebook '04'.*available: 01_data, 02_train, 03_table"):
        select(series, only="04")


def test_unknown_parameter_is_refused_before_any_notebook_runs(tmp_path: Path) -> None:
    first = write_notebook(tmp_path / "nb" / "01_a.ipynb", LOG_CELL)
    second = write_notebook(tmp_path / "nb" / "02_b.ipynb", LOG_CELL, parameters='workdir: str = "."')
    with pytest.raises(ValueError, match=r"02_b.ipynb: unknown parameter\(s\) \['seed'\]"):
        run_notebooks([first, second], tmp_path / "out", {"workdir": str(tmp_path), "seed": 3})
    assert not (tmp_path / "log.txt").exists() and not (tmp_path / "out").exists()


def test_notebook_parameters_use_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    parameters = notebook_parameters("smoke", "runs/smoke", "reports/artifacts", seed=3)
    assert parameters == {
        "profile": "smoke",
        "workdir": str(tmp_path / "runs/smoke"),
        "artifacts": str(tmp_path / "reports/artifacts"),
        "seed": 3,
        "device": "auto",
    }


# --- Runner: executing on a real kernel ---------------------------------------------------------


def test_notebooks_run_in_order_in_their_folder_with_injected_parameters(tmp_path: Path) -> None:
    series = _series(tmp_path / "nb", "01_a", "02_b")
    runs = run_notebooks(series, tmp_path / "out", {"workdir": str(tmp_path), "profile": "demo", "seed": 7})
    assert (tmp_path / "log.txt").read_text().splitlines() == [f"nb demo 7 {sys.executable}"] * 2
    assert [run.executed for run in runs] == [tmp_path / "out" / "notebooks" / f"{n}.ipynb" for n in ("01_a", "02_b")]
    executed = nbformat.read(runs[0].executed, as_version=4)
    assert "injected-parameters" in executed.cells[2].metadata["tags"]
    timings = json.loads((tmp_path / "out" / "timings.json").read_text())
    assert set(timings) == {"01_a", "02_b"} and timings["01_a"]["profile"] == "demo"
    assert not list((tmp_path / "out" / "notebooks").glob(".*"))


def test_failing_notebook_stops_the_run_naming_notebook_and_cell(tmp_path: Path) -> None:
    first = write_notebook(tmp_path / "nb" / "01_ok.ipynb", LOG_CELL)
    failing = write_notebook(tmp_path / "nb" / "02_fails.ipynb", "x = 1", "raise ValueError(f'boom {seed}')")
    last = write_notebook(tmp_path / "nb" / "03_never.ipynb", LOG_CELL)
    out = tmp_path / "out" / "notebooks"
    with pytest.raises(NotebookFailed) as caught:
        run_notebooks([first, failing, last], tmp_path / "out", {"workdir": str(tmp_path), "seed": 5})
    message = str(caught.value)
    assert "02_fails.ipynb failed at cell 3" in message and "ValueError: boom 5" in message
    assert caught.value.cell_index == 3 and caught.value.executed_copy == out / "failed" / "02_fails.ipynb"
    assert (out / "01_ok.ipynb").is_file() and (out / "failed" / "02_fails.ipynb").is_file()
    assert not (out / "02_fails.ipynb").exists() and not (out / "03_never.ipynb").exists()
    assert len((tmp_path / "log.txt").read_text().splitlines()) == 1
    assert set(json.loads((tmp_path / "out" / "timings.json").read_text())) == {"01_ok"}


def test_rerunning_one_notebook_updates_only_its_timing(tmp_path: Path) -> None:
    series = _series(tmp_path / "nb", "01_a", "02_b")
    timings = tmp_path / "out" / "timings.json"
    timings.parent.mkdir()
    timings.write_text(json.dumps({"01_a": {"seconds": 123.0}, "02_b": {"seconds": 456.0}}))
    run_notebooks(select(series, only="2"), tmp_path / "out", {"workdir": str(tmp_path)})
    merged = json.loads(timings.read_text())
    assert merged["01_a"] == {"seconds": 123.0} and merged["02_b"]["seconds"] < 456.0


PROVENANCE_CELL = (
    "import json\nfrom pathlib import Path\n"
    "folder = Path(artifacts) / '01_data_curation'\nfolder.mkdir(parents=True)\n"
    "record = {'profile': profile, 'seed': seed, 'weights_tag': 'random-init(seed=0)', "
    "'dataset': 'synthetic-tiny', 'workdir': workdir}\n"
    "(folder / 'provenance.json').write_text(json.dumps(record))"
)


def test_make_report_runs_the_selection_and_builds_a_partial_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the defaults: notebooks/, reports/, runs/<profile>
    write_notebook(tmp_path / "notebooks" / "01_data_curation.ipynb", PROVENANCE_CELL)
    write_notebook(tmp_path / "notebooks" / "02_pretraining.ipynb", "raise RuntimeError('not selected')")
    readme = make_report("smoke", only="1")
    text = readme.read_text()
    assert text.startswith(f"**Backbone:** `{RANDOM_TAG}`")
    assert "`02_pretraining`: provenance.json, curves.csv" in text
    record = json.loads((tmp_path / "reports/artifacts/01_data_curation/provenance.json").read_text())
    assert record["workdir"] == str(tmp_path / "runs" / "smoke") and record["seed"] == 0
    assert set(json.loads((tmp_path / "reports" / "timings.json").read_text())) == {"01_data_curation"}
    assert (tmp_path / "reports" / "notebooks" / "01_data_curation.ipynb").is_file()


def test_prepared_copy_runs_under_nb_regression(tmp_path: Path, nb_regression: Any) -> None:
    notebook = write_notebook(tmp_path / "nb" / "01_a.ipynb", LOG_CELL, "print('hello')")
    parameters = notebook_parameters("smoke", tmp_path / "work", tmp_path / "artifacts", seed=2)
    (tmp_path / "work").mkdir()
    prepared = prepare_notebook(notebook, tmp_path / "prepared", parameters)
    nb_regression.diff_ignore = NB_DIFF_IGNORE
    nb_regression.exec_cwd = str(notebook.parent)
    nb_regression.check(str(prepared))
    assert (tmp_path / "work" / "log.txt").read_text().split()[:3] == ["nb", "smoke", "2"]


# --- Quiet runs, progress and clean executed copies ---------------------------------------------

TQDM_CELL = (
    "from tqdm.auto import tqdm\ntotal = 0\nfor i in tqdm(range(2000), desc='work'):\n    total += i\nprint(total)"
)


def test_executed_copies_hold_no_progress_bars_and_no_widget_state(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "nb" / "01_bars.ipynb", TQDM_CELL)
    (run,) = run_notebooks([notebook], tmp_path / "out", {"workdir": str(tmp_path)})
    executed = nbformat.read(run.executed, as_version=4)
    outputs = [output for cell in executed.cells if cell.cell_type == "code" for output in cell.outputs]
    assert "widgets" not in executed.metadata
    assert [output.get("text", "").strip() for output in outputs] == [str(sum(range(2000)))]


def test_timings_record_seconds_per_cell_for_the_next_estimate(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "nb" / "01_a.ipynb", "import time\ntime.sleep(0.3)")
    run_notebooks([notebook], tmp_path / "out", {"workdir": str(tmp_path)})
    cells = json.loads((tmp_path / "out" / "timings.json").read_text())["01_a"]["cells"]
    assert len(cells) == 4  # markdown, parameters, injected parameters, the sleeping cell
    assert cells[0] < 0.1 and cells[-1] >= 0.3


def test_progress_names_notebook_cell_and_time_left_from_the_last_run(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    notebook = write_notebook(tmp_path / "nb" / "01_a.ipynb", "#papermill_description=Train the model\nx = 1")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        run_notebooks([notebook], out, {"workdir": str(tmp_path)}, progress=True)
    first = capfd.readouterr().err
    assert "[1/1] 01_a" in first and "cell 4: Train the model" in first and "no earlier timings" in first
    assert "IPKernelApp" not in first  # the kernel stays quiet, and papermill logs nothing below a warning:
    assert [
        r.getMessage() for r in caplog.records if r.name.startswith("papermill") and r.levelno < logging.WARNING
    ] == []
    timings = json.loads((out / "timings.json").read_text())
    timings["01_a"]["cells"] = [0.0, 0.0, 0.0, 600.0]
    (out / "timings.json").write_text(json.dumps(timings))
    run_notebooks([notebook], out, {"workdir": str(tmp_path)}, progress=True)
    assert re.search(r"about (9|10)m\d\ds left \(last run\)", capfd.readouterr().err)


def test_make_report_and_the_makefile_default_to_the_same_profile() -> None:
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    assert re.search(rf"^PROFILE\s*\?=\s*{DEFAULT_PROFILE}\s*$", makefile, re.MULTILINE)
    assert make_report.__defaults__[0] == DEFAULT_PROFILE == "demo"


def _figure_png() -> str:
    """A matplotlib figure as papermill stores it: base64 PNG with thousands of anti-aliased colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(6, 3))
    grid = np.linspace(0, 3, 60)
    left.imshow(np.sin(grid[:, None]) * np.cos(grid[None, :] * 2), cmap="viridis")
    for shift in range(5):
        right.plot(grid, np.sin(grid + shift), label=f"run {shift}")
    right.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def test_cleaning_drops_widget_state_and_bar_refreshes_and_compacts_images(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"x": {}}}}
    figure = _figure_png()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "show()",
            outputs=[
                nbformat.v4.new_output("display_data", {WIDGET_VIEW: {"model_id": "x"}, "text/plain": "HBox()"}),
                nbformat.v4.new_output("display_data", {WIDGET_VIEW: {"model_id": "y"}, "text/html": "<b>moments</b>"}),
                nbformat.v4.new_output("display_data", {"image/png": figure, "text/plain": "<Figure>"}),
                nbformat.v4.new_output("stream", name="stderr", text="\rtiny:   0%|    | 0/60 [00:00<?, ?video/s]"),
                nbformat.v4.new_output(
                    "stream", name="stderr", text="WARNING matr: slow\n\rpredict: 50%|##  | 2/4 [00:01<00:01, 2it/s]\n"
                ),
            ],
        )
    ]
    path = tmp_path / "executed.ipynb"
    nbformat.write(notebook, path)
    clean_executed(path)
    cleaned = nbformat.read(path, as_version=4)
    outputs = cleaned.cells[0].outputs
    assert "widgets" not in cleaned.metadata
    assert [sorted(output.get("data", {})) for output in outputs] == [["text/html"], ["image/png", "text/plain"], []]
    assert outputs[2].text == "WARNING matr: slow"  # bar refreshes go, other stderr stays
    compact = base64.b64decode(outputs[1].data["image/png"])
    assert len(compact) < len(base64.b64decode(figure))
    assert Image.open(io.BytesIO(compact)).size == (600, 300)


def test_cleaning_moves_embedded_videos_beside_the_copy_and_links_them(tmp_path: Path) -> None:
    target = Path(__file__).resolve().parents[1] / "examples" / "target.mp4"
    other = tmp_path / "elsewhere" / "target.mp4"  # same name, other bytes
    other.parent.mkdir()
    other.write_bytes(b"not the same video")
    players = [player_html(video, [RankedSpan(1.0, 2.0, 0.9)]) for video in (target, other)]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("play()", outputs=[nbformat.v4.new_output("display_data", {"text/html": markup})])
        for markup in players
    ]
    path = tmp_path / "report" / "00_try.ipynb"
    path.parent.mkdir()
    nbformat.write(notebook, path)
    clean_executed(path)
    clean_executed(path)  # a clean copy stays as it is
    linked = [cell.outputs[0].data["text/html"] for cell in nbformat.read(path, as_version=4).cells]
    sources = [re.search(r'<video[^>]* src="([^"]+)"', markup)[1] for markup in linked]
    assert sources[0] == "00_try_files/target.mp4" and re.fullmatch(
        r"00_try_files/target-[0-9a-f]{12}\.mp4", sources[1]
    )
    assert [(path.parent / source).read_bytes() for source in sources] == [target.read_bytes(), other.read_bytes()]
    assert sorted(p.name for p in (path.parent / "00_try_files").iterdir()) == sorted(Path(s).name for s in sources)
    assert linked[0] == re.sub(r'src="data:video/mp4;base64,[^"]+"', f'src="{sources[0]}"', players[0])


@pytest.mark.parametrize(
    ("source", "label"),
    [
        ("#papermill_description=Train\nfit()", "Train"),
        ("# papermill_description=Localize\nfound = localize()", "Localize"),
        ("\n\nrows = table_rows(profile)\n", "rows = table_rows(profile)"),
        ("x = " + "1" * 80, "x = " + "1" * 43 + "…"),
        ("", "(empty cell)"),
    ],
)
def test_cell_label_prefers_the_papermill_description(source: str, label: str) -> None:
    assert cell_label(source) == label


def test_seconds_read_as_minutes_and_hours() -> None:
    assert [format_seconds(s) for s in (4.4, 185, 3720)] == ["4s", "3m05s", "1h02m"]
