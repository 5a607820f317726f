"""The project's set-up files agree with each other, so that a conda user and a pip user get the same kit."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load_pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def environment_pip_lines() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml must have exactly one pip section"
    return pip_sections[0]


def test_environment_installs_the_project_with_every_extra():
    extras = set(load_pyproject()["project"]["optional-dependencies"])
    (line,) = [line for line in environment_pip_lines() if line.startswith("-e .")]
    installed = set(re.fullmatch(r"-e \.\[(.*)\]", line).group(1).split(","))
    assert installed == extras


def test_environment_declares_no_dependency_of_its_own():
    assert [line for line in environment_pip_lines() if not line.startswith("-e .")] == []
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_deps = [d.split("=")[0] for d in env["dependencies"] if isinstance(d, str)]
    assert sorted(conda_deps) == ["pip", "python"]


def test_environment_python_satisfies_requires_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    (python,) = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python=")]
    assert python == "python=3.11"
    assert load_pyproject()["project"]["requires-python"] == ">=3.11,<3.12"


def test_torch_and_torchvision_are_pinned_together():
    deps = load_pyproject()["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps


def test_required_packages_are_declared():
    project = load_pyproject()["project"]
    declared = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    names = {re.split(r"[=<>~\[ ]", d)[0].lower().replace("_", "-") for d in declared}
    required = {"torch", "jupyterlab", "papermill", "open-clip-torch", "av", "seaborn", "pytest-notebook"}
    assert required <= names


def test_readme_opens_with_the_report_and_test_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1)
    assert [line for line in first_block.splitlines() if line.strip()] == ["make report", "make test"]


def test_ci_runs_the_readme_test_command():
    commands = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert commands[-1] == "make test"
    assert all("chromium" in line or line.strip() in ("fi",) or "apt-get" in line for line in commands[:-1])
