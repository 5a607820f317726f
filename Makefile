# Everything runs inside a local virtual environment that these targets create on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PROFILE ?= demo
FROM ?=
ONLY ?=

.PHONY: report test lint bench clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[notebooks,test]'
	touch $@

report: $(VENV)/.installed
	$(PY) -m matr report --profile $(PROFILE) $(if $(FROM),--from $(FROM)) $(if $(ONLY),--only $(ONLY))

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(PY) benchmarks/bench_align.py
	$(PY) benchmarks/bench_model.py
	$(PY) benchmarks/bench_decode.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_stats.py
	$(PY) benchmarks/bench_cli.py
	$(PY) benchmarks/bench_inference.py
	$(PY) benchmarks/bench_loader.py
	$(PY) benchmarks/bench_parallel_runs.py

clean-venv:
	rm -rf $(VENV)
