"""The reporting layer: run the notebook series, check what it wrote, and build the report.

* :mod:`~matr.reporting.runner`: papermill runs of ``notebooks/NN_name.ipynb`` (``make report`` /
  ``matr report``), with :mod:`~matr.reporting.progress` (notebook, cell, elapsed, time left) and
  :mod:`~matr.reporting.executed` (executed copies without widget state, compact images).
* :mod:`~matr.reporting.artifacts`: the ARTIFACT CONTRACT between notebooks and report, and its checks.
* :mod:`~matr.reporting.report` and :mod:`~matr.reporting.sections`: the report's content, as blocks.
* :mod:`~matr.reporting.render`: those blocks as Markdown (``reports/README.md``) and static HTML
  (``reports/report.html``).
* :mod:`~matr.reporting.figures`: the notebooks' figures.

Imports go one way: ``matr.experiments`` <- ``matr.reporting`` <- ``matr.cli`` and the notebooks.
"""
