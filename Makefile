# Setup and entry points. `make demo` runs the embedded demo (results/paper/main.pdf);
# `make test` runs the tests (library, house style, pipeline lint, full-study dry run, CI-sized DAG end to end);
# `make lint` only the house style, `make format` applies the formatters.
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
# numba (ranx) keeps its compiled functions here, so only the first job pays for compiling them
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba

.PHONY: demo cpu-study study test lint format setup tex

demo: setup
	snakemake --cores all --configfile config/demo.yaml

# The CPU study (config/cpu-study.yaml): trained encoders, three seeds, offline on 2 cores.
cpu-study: setup
	snakemake --cores all --configfile config/cpu-study.yaml

study: $(VENV)/.installed
	snakemake --cores all

test: setup
	$(BIN)/python -m pytest -m "not slow" -q

# House style alone (also part of `make test`): ruff, snakefmt, import-linter, sizes of functions and modules.
lint: $(VENV)/.installed
	$(BIN)/python -m pytest -m style -q tests/test_style.py

# Applies what the tools fix by themselves; what remains, `make lint` lists.
format: $(VENV)/.installed
	$(BIN)/ruff check --fix --exit-zero src tests workflow bench
	$(BIN)/ruff format src tests workflow bench
	$(BIN)/snakefmt Snakefile rules/

# The Python environment and the TeX packages install side by side.
setup:
	$(MAKE) --no-print-directory -j2 $(VENV)/.installed tex

# PyTorch first and pinned (an unpinned one, pulled in by another package, would be a multi-GB CUDA build).
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[pyterrier,datasets,embedded,workflow,test]"
	touch $@

# TeX Live, latexmk and every LaTeX package paper/main.tex loads (scripts/latex-packages.tsv): each is
# checked with kpsewhich, and the Debian packages providing the missing ones are installed.
tex:
	scripts/setup-tex
