"""Keep ``notebooks/`` clean in git: nbstripout as a git filter, and notebooks saved in the form it leaves.

    python tools/notebook_hygiene.py install             # once per clone: the git filter and diff driver
    python tools/notebook_hygiene.py normalize notebooks/*.ipynb   # rewrite into the committed form
    python tools/notebook_hygiene.py check notebooks/*.ipynb       # exit 1 naming files not in that form

``.gitattributes`` routes ``notebooks/*.ipynb`` through the ``nbstripout`` filter (executed copies
in ``reports/`` keep their outputs). The filter drops outputs, execution counts, widget state and
``language_info`` (JupyterLab writes the interpreter's version there) and numbers cell ids
``0, 1, ...``. A committed notebook is in the *committed form*: nbformat 4.5, the kernelspec
JupyterLab writes for the ``python3`` kernel, and exactly what the filter makes of it, so that
opening, running and saving it in JupyterLab leaves ``git status`` clean.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import nbformat
from nbstripout import strip_output

EXTRA_KEYS = ("metadata.language_info",)
DEFAULT_KEYS = (  # nbstripout's own defaults, which its git filter always applies
    "metadata.signature",
    "metadata.widgets",
    "cell.metadata.collapsed",
    "cell.metadata.ExecuteTime",
    "cell.metadata.execution",
    "cell.metadata.heading_collapsed",
    "cell.metadata.hidden",
    "cell.metadata.scrolled",
)
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def git_config(python: str = sys.executable) -> dict[str, str]:
    """The ``git config`` entries of the filter and the diff driver, run with ``python``."""
    return {
        "filter.nbstripout.clean": f'"{python}" -m nbstripout',
        "filter.nbstripout.smudge": "cat",
        "filter.nbstripout.extrakeys": " ".join(EXTRA_KEYS),
        "diff.ipynb.textconv": f'"{python}" -m nbstripout -t',
    }


def install(repo: Path) -> None:
    """Configure the filter in ``repo``'s local git config."""
    for key, value in git_config().items():
        subprocess.run(["git", "config", key, value], cwd=repo, check=True)


def committed_form(text: str) -> str:
    """``text`` (a notebook's JSON) as it is committed: nbformat 4.5, JupyterLab's kernelspec, stripped."""
    notebook = nbformat.reads(text, as_version=4)
    if notebook.nbformat_minor < 5:
        notebook.nbformat_minor = 5
        for cell in notebook.cells:
            cell.setdefault("id", "0")
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook = strip_output(notebook, keep_output=False, keep_count=False, keep_id=False,
                            extra_keys=[*DEFAULT_KEYS, *EXTRA_KEYS])  # fmt: skip
    return nbformat.writes(notebook) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("install", "normalize", "check"))
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.command == "install":
        install(Path.cwd())
        return 0
    stale = [
        path
        for path in args.notebooks
        if committed_form(path.read_text(encoding="utf-8")) != path.read_text(encoding="utf-8")
    ]
    if args.command == "normalize":
        for path in stale:
            path.write_text(committed_form(path.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    for path in stale:
        print(f"{path}: not in the committed form (run: python tools/notebook_hygiene.py normalize {path})")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
