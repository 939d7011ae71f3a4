# Counterfeit-listing image matcher. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast eval bench clean

# torch/torchvision are pinned to the wheels this machine keeps on disk (pip's cap); pyproject declares ranges.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1" || $(PY) -m pip install --quiet "torch>=2.4" "torchvision>=0.19"
	$(PY) -m pip install --quiet -e ".[dev,ray]"
	touch $(STAMP)

install: $(STAMP)

# the demo index is rebuilt only when the catalog or the engine changed (a new index format needs a rebuild)
indexes/demo/CURRENT: $(STAMP) $(shell find demo/catalog matcher -type f -not -name '*.pyc' 2>/dev/null)
	$(VENV)/bin/matcher index build demo/catalog --out indexes/demo

demo: indexes/demo/CURRENT
	$(VENV)/bin/matcher scan demo/listings.csv --index indexes/demo --out results/demo.jsonl --top-k 5 \
		--report results/demo.html

test: $(STAMP)
	$(PY) -m pytest -q

# the tests that do not run the real CNN (under a minute)
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# Accuracy on a benchmark in the devbench layout: make eval BENCH=path/to/bench
eval: $(STAMP)
	$(VENV)/bin/matcher eval $(BENCH) --work-dir results/eval

# Scan throughput and memory vs a naive PIL + eager torch loop: make bench [BENCH=path/to/bench] [BENCH_ARGS=...]
# With BENCH (a benchmark in the devbench layout), first the figure to quote: a marketplace mix of its real everyday
# photos (scripts/bench_marketplace.py, 3,000 listings); then the bundled generated listings (scripts/bench_scan.py).
bench: $(STAMP)
	$(if $(BENCH),$(PY) scripts/bench_marketplace.py $(BENCH) --listings 3000 &&) $(PY) scripts/bench_scan.py $(BENCH_ARGS)

clean:
	rm -rf results indexes/demo .pytest_cache
