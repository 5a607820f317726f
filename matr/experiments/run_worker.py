"""One training run in a child process: ``python -m matr.experiments.run_worker``, its job on stdin.

:func:`matr.experiments.runs.train_variants` starts one such process per run when a profile trains
several runs at once (``parallel_runs``). The job is one JSON object: ``profile`` (the
:class:`~matr.experiments.profiles.Profile` as ``dataclasses.asdict`` gives it), ``workdir``,
``variant``, ``seed`` and ``threads`` (the parent's thread count, so that the run computes exactly
what it computes in the parent).
"""

from __future__ import annotations

import json
import sys

import torch

from matr.experiments.profiles import profile_from_dict
from matr.experiments.runs import train_run


def main() -> None:
    """Read the job from stdin and train its run (resumable, as :func:`train_run` is)."""
    job = json.load(sys.stdin)
    torch.set_num_threads(int(job["threads"]))
    train_run(profile_from_dict(job["profile"]), job["workdir"], job["variant"], int(job["seed"]))


if __name__ == "__main__":
    main()
