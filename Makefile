# Ranking Ads in Practice: build the book, run the tests, regenerate the labs.
#
#   make book                      execute every chapter at book scale, HTML in _build/html
#   make book RANKING_SCALE=gpu    the same on a GPU machine, with about ten times the data
#   make test                      unit tests, lab checks and every chapter/solution at smoke scale
#   make student                   regenerate labs/*.ipynb from labs/solutions/*.ipynb
#   make clean                     remove build outputs (keeps .venv and generated data)
#
# Every target creates .venv and installs what it needs on first use.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ranking-installed

# torch is installed first, pinned, and only when it is not importable yet: a bare
# `torch` requirement would make pip fetch a multi-GB CUDA build. Override it for
# another build, e.g. make test TORCH='torch==2.13.0 --index-url <your index>'.
TORCH ?= torch==2.13.0

# The size of the synthetic ad log: smoke (seconds), book (default), gpu.
RANKING_SCALE ?= book
TEST_SCALE ?= smoke

# One thread each: on small machines torch and LightGBM threads contend and a
# run can get many times slower.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1

# FORCE=1 re-executes every notebook of the book, ignoring the execution cache.
FORCE ?= 0
# STRICT=1 turns Sphinx warnings (a missing glue value, a broken reference) into errors.
STRICT ?= 0

NOTEBOOKS := $(sort $(wildcard book/*.ipynb) $(wildcard labs/solutions/*.ipynb))

.PHONY: help venv book test student clean distclean offline-assets check-offline

help:
	@sed -n '3,7s/^# \{0,1\}//p' Makefile

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) requirements.txt requirements-dev.txt pyproject.toml
	if ! $(PY) -c "import torch" 2>/dev/null; then $(PY) -m pip install $(TORCH); fi
	$(PY) -m pip install -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -e .
	touch $@

# The execution cache is keyed by each notebook's code only, so it is wiped (and
# every page rebuilt) whenever the scale or the `ranking` package changes.
book: $(STAMP) offline-assets
	key="$(RANKING_SCALE) $$( { cat requirements.txt; find ranking -name '*.py' | LC_ALL=C sort | xargs cat; } | sha1sum | cut -c1-16)"; \
	flags=""; \
	if [ "$(FORCE)" = 1 ] || [ "$$(cat _build/.book-key 2>/dev/null)" != "$$key" ]; then \
	    echo "book: new scale or package code: executing every notebook"; \
	    rm -rf _build/.jupyter_cache _build/jupyter_execute _build/.doctrees _build/.book-key; \
	    flags="--all"; \
	fi; \
	if [ "$(STRICT)" = 1 ]; then flags="$$flags -W --keep-going"; fi; \
	RANKING_SCALE=$(RANKING_SCALE) $(VENV)/bin/jupyter-book build . $$flags; \
	echo "$$key" > _build/.book-key; \
	echo "book: open _build/html/index.html"

# The built book works offline: MathJax comes with the sphinx-mathjax-offline package, and
# this fetches the ipywidgets manager and RequireJS from the npm registry (once, verified,
# cached in _offline/cache) into _offline/static, which Sphinx copies to _build/html/_static.
offline-assets: $(STAMP)
	$(PY) tools/offline_assets.py

# Fails, naming page and URL, when a built page loads a script, stylesheet or font from another host.
check-offline: $(STAMP)
	$(PY) tools/check_offline.py _build/html

# pytest exits 5 when it collected no test: make treats that, like any non-zero
# exit, as a failure. Student labs (labs/*.ipynb) are not executed: their stubs raise.
test: $(STAMP)
	RANKING_SCALE=$(TEST_SCALE) $(PY) -m pytest tests $(NOTEBOOKS) \
	    --nbval-lax --nbval-current-env --nbval-cell-timeout=900

student: $(STAMP)
	$(PY) tools/make_student.py

clean:
	rm -rf _build build .pytest_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o -name .ipynb_checkpoints -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) data/adlog-* _offline
