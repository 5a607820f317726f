"""In a real browser: JupyterLab runs ``00_try_matr.ipynb`` through its UI, and the committed report renders.

Selenium drives Debian's Chromium (``/usr/bin/chromium`` and ``/usr/bin/chromedriver``, which
``.ci/run`` installs) headless. JupyterLab serves a scratch git repository holding the notebooks,
the examples and the ``nbstripout`` filter installed as the README says; the kernel is this
interpreter, so it imports this checkout's ``matr``. The test runs every cell from the Run menu,
checks that the ranked moments and a playable video player appear and that a click on a moment
seeks the player, saves, and checks that git sees no change. The saved notebook then becomes an
executed copy as the report keeps it (:func:`matr.reporting.executed.clean_executed`: the video
moves to a file beside the copy, linked by a relative URL): JupyterLab must load the linked video
from that copy and, once the user trusts the copy (an untrusted notebook's HTML runs no handlers),
seek on a click; the copy's nbconvert HTML export must show the same working player.
``reports/report.html`` must show every image and no raw Markdown or reST markup. On failure a screenshot goes to a temporary folder
(its path is in the assertion message).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from matr.reporting.executed import clean_executed

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
NOTEBOOK = "notebooks/00_try_matr.ipynb"
EXECUTED = "reports/notebooks/00_try_matr.ipynb"  # where the report keeps the executed copy
SHOWN_NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
RUN_TIMEOUT_S = 240  # the whole notebook, on a loaded 2-core machine
RAW_MARKUP = ("**", "`", ":func:", ":class:", ":mod:")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.fail("Debian's chromium and chromium-driver are missing: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@contextlib.contextmanager
def screenshot_on_failure(driver: webdriver.Chrome, folder: Path, name: str) -> Iterator[None]:
    try:
        yield
    except (AssertionError, WebDriverException) as error:
        path = folder / f"{name}.png"
        driver.save_screenshot(str(path))
        raise AssertionError(f"{error} (screenshot: {path})") from error


@pytest.fixture(scope="module")
def lab_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed git repository with the notebook, the examples and the nbstripout filter."""
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "examples", repo / "examples", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (repo / "notebooks").mkdir()
    shutil.copy(ROOT / NOTEBOOK, repo / NOTEBOOK)
    shutil.copy(ROOT / ".gitattributes", repo / ".gitattributes")
    (repo / ".gitignore").write_text("/runs/\n.ipynb_checkpoints/\n", encoding="utf-8")
    _git(repo, "init", "--quiet")
    subprocess.run([sys.executable, str(ROOT / "tools" / "notebook_hygiene.py"), "install"], cwd=repo, check=True)
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "copy")
    return repo


@pytest.fixture(scope="module")
def lab(lab_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 serving ``lab_repo``, without a token; yields its URL."""
    port, home = _free_port(), tmp_path_factory.mktemp("jupyter")
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "OMP_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
    }
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--allow-root", "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={lab_repo}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.expose_app_in_browser=True"]  # fmt: skip
    _write_lab_settings(home / "settings")
    with open(home / "server.log", "w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url + "/api/status", server, home / "server.log")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _write_lab_settings(folder: Path) -> None:
    """Start the notebook's kernel without asking (a slow server otherwise shows "Select Kernel") and fetch no news."""
    settings = {
        "notebook-extension/tracker": {"autoStartDefaultKernel": True},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for plugin, values in settings.items():
        path = folder / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


def _wait_for(url: str, server: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=2)
            return
        time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {timeout} s: {log.read_text()[-2000:]}")


def _run_command_from_menu(driver: webdriver.Chrome, menu: str, label: str) -> None:
    """Click ``menu`` in the menu bar, then its item ``label``."""
    item = next(e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if e.text.strip() == menu)
    item.click()
    WebDriverWait(driver, 10).until(lambda d: _menu_item(d, label)).click()


def _menu_item(driver: webdriver.Chrome, label: str) -> Any:
    labels = driver.find_elements(By.CSS_SELECTOR, ".lm-Menu-item .lm-Menu-itemLabel")
    return next((e for e in labels if e.text.strip() == label), None)


def _run_all_cells(driver: webdriver.Chrome, attempts: int = 3) -> None:
    """Run All Cells once the kernel reports Idle; again if no cell started (a request sent while the kernel
    connects is dropped under load)."""
    for _ in range(attempts):
        WebDriverWait(driver, 90, poll_frequency=0.5).until(
            lambda d: "| Idle" in d.find_element(By.TAG_NAME, "body").text
        )
        _run_command_from_menu(driver, "Run", "Run All Cells")
        with contextlib.suppress(TimeoutException):
            WebDriverWait(driver, 20, poll_frequency=0.5).until(_started_cells)
            return
    pytest.fail(f"Run All Cells started no cell in {attempts} attempts")


def _started_cells(driver: webdriver.Chrome) -> bool:
    prompts = driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputArea-prompt")
    return any(p.text.strip("[]: \n") for p in prompts)


def _busy_cells(driver: webdriver.Chrome) -> list[str]:
    prompts = driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputArea-prompt")
    return [p.text for p in prompts if not p.text.strip().strip("[]:").isdigit()]


def test_the_try_notebook_runs_in_jupyterlab_and_saving_keeps_git_clean(
    browser: webdriver.Chrome, lab: str, lab_repo: Path, screenshots: Path
) -> None:
    browser.get(f"{lab}/lab/tree/{NOTEBOOK}")
    with screenshot_on_failure(browser, screenshots, "try_notebook"):
        WebDriverWait(browser, 90).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell"))
        _run_all_cells(browser)
        WebDriverWait(browser, RUN_TIMEOUT_S, poll_frequency=1).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".matr-player video") and not _busy_cells(d)
        )
        errors = browser.find_elements(By.CSS_SELECTOR, '.jp-OutputArea-output[data-mime-type*="error"]')
        assert not errors, [e.text[:500] for e in errors]
        tables = [t.text for t in browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output table")]
        assert any("score" in t and "start" in t for t in tables), tables
        assert browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img"), "no timeline figure"
        _check_player(browser)
        _run_command_from_menu(browser, "File", "Save Notebook")
        WebDriverWait(browser, 30).until(lambda d: _saved(lab_repo))
    assert _git(lab_repo, "diff", "--name-only") == ""
    _git(lab_repo, "add", "notebooks")
    assert _git(lab_repo, "status", "--porcelain") == ""
    executed = _executed_copy(lab_repo / NOTEBOOK, lab_repo / EXECUTED)
    assert "data:video" not in executed.read_text(encoding="utf-8")
    browser.get(f"{lab}/lab/workspaces/executed/tree/{EXECUTED}?reset")  # a fresh workspace: only this tab
    with screenshot_on_failure(browser, screenshots, "executed_copy_in_jupyterlab"):
        _check_video_loads(WebDriverWait(browser, 60).until(_scrolled_to_the_video))
        _trust_notebook(browser)
        _check_player(browser)
    browser.get(_export_html(executed).as_uri())
    with screenshot_on_failure(browser, screenshots, "exported_executed_copy"):
        _check_player(browser)


def _scrolled_to_the_video(driver: webdriver.Chrome) -> Any:
    """The shown notebook's video, scrolling down each call (JupyterLab renders only the cells in view)."""
    driver.execute_script(f"document.querySelectorAll('{SHOWN_NOTEBOOK} .jp-WindowedPanel-outer')[0]?.scrollBy(0, 600)")
    return next(iter(driver.find_elements(By.CSS_SELECTOR, f"{SHOWN_NOTEBOOK} video")), None)


def _trust_notebook(driver: webdriver.Chrome) -> None:
    """Trust the shown notebook, as a user does (command palette: Trust Notebook), so its HTML may run handlers."""
    driver.execute_script("window.jupyterapp.commands.execute('notebook:trust')")
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept"))[0].click()
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".matr-player .matr-moment[data-start]"))


def _executed_copy(saved: Path, executed: Path) -> Path:
    """The saved notebook cleaned as the report keeps executed copies (its video linked, not embedded)."""
    executed.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(saved, executed)
    clean_executed(executed)
    return executed


def _export_html(notebook: Path) -> Path:
    """``notebook`` as nbconvert's HTML page beside it (no kernel: the player must work as plain HTML)."""
    command = [sys.executable, "-m", "nbconvert", "--to", "html", str(notebook)]
    subprocess.run(command, check=True, capture_output=True)
    return notebook.with_suffix(".html")


def _saved(repo: Path) -> bool:
    """Whether the notebook on disk holds outputs (JupyterLab saved it after the run)."""
    return '"output_type"' in (repo / NOTEBOOK).read_text(encoding="utf-8")


def _check_video_loads(video: Any) -> None:
    driver = video.parent
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return arguments[0].readyState", video) >= 1)
    assert driver.execute_script("return arguments[0].duration", video) > 1.0


def _check_player(driver: webdriver.Chrome) -> None:
    video = driver.find_element(By.CSS_SELECTOR, ".matr-player video")
    _check_video_loads(video)
    button = driver.find_elements(By.CSS_SELECTOR, ".matr-player .matr-moment")[0]
    button.click()
    start = float(button.get_attribute("data-start"))
    WebDriverWait(driver, 10).until(
        lambda d: abs(d.execute_script("return arguments[0].currentTime", video) - start) < 1.0
    )


def test_the_report_shows_every_image_and_no_raw_markup(browser: webdriver.Chrome, screenshots: Path) -> None:
    report = ROOT / "reports" / "report.html"
    browser.get(report.as_uri())
    with screenshot_on_failure(browser, screenshots, "report"):
        WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
        images = browser.find_elements(By.TAG_NAME, "img")
        broken = [
            img.get_attribute("src")
            for img in images
            if not browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
        ]
        assert images and not broken, f"{len(broken)} of {len(images)} images do not load: {broken[:5]}"
        text = browser.find_element(By.TAG_NAME, "body").text
        shown = {mark: text.count(mark) for mark in RAW_MARKUP if mark in text}
        assert not shown, f"raw markup shown in {report.name}: {shown}"
