# Two entry points for a fresh machine with Python 3.11:
#   make quick   set everything up, then run the quick preset (every figure)
#   make test    set everything up, then run the test suite and the project's checks
# Both create and reuse the virtualenv .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
# pytest-xdist workers of `make test` (auto: one per CPU core).
TEST_WORKERS ?= auto
# Debian packages. The quick preset needs only real Fashion-MNIST offline; the tests also need
# a one-node SLURM for the cluster test and Chromium to render the Snakemake report.
QUICK_APT_PACKAGES := dataset-fashion-mnist
TEST_APT_PACKAGES := $(QUICK_APT_PACKAGES) slurm-wlm munge chromium

.PHONY: help setup lock system system-quick system-test quick diagnosis full docs test lint clean
.DEFAULT_GOAL := help

help:  ## this list
	@awk -F ':.*## ' '/^[a-z-]+:.*## / { printf "make %-9s %s\n", $$1, $$2 }' \
	  $(firstword $(MAKEFILE_LIST))

# Every package comes at the version constraints.txt pins (torch and torchvision first, on their
# own, so that pip picks them before anything that merely requires some torch).
$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt torch torchvision
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

setup: $(BIN)/.installed  ## only the virtualenv .venv, every package at its constraints.txt pin

# Re-resolves constraints.txt after a change to pyproject.toml's dependencies: a scratch
# virtualenv gets torch and torchvision at their pinned versions (edit those two lines of
# constraints.txt, and envs/labaug.yaml, to move PyTorch) and the newest releases of everything
# else that pyproject.toml allows; its `pip freeze`, under the file's header, is the new file.
LOCK_VENV := .venv-lock
lock:  ## re-resolve constraints.txt after editing pyproject.toml's dependencies
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade pip
	grep -E '^(torch|torchvision)==' constraints.txt > $(LOCK_VENV)/torch.txt
	$(LOCK_VENV)/bin/pip install --quiet -r $(LOCK_VENV)/torch.txt
	$(LOCK_VENV)/bin/pip install --quiet -c $(LOCK_VENV)/torch.txt -e ".[test]"
	{ sed '/^[^#]/,$$d' constraints.txt; $(LOCK_VENV)/bin/pip freeze --exclude-editable; } \
	  > $(LOCK_VENV)/constraints.txt
	mv $(LOCK_VENV)/constraints.txt constraints.txt
	rm -rf $(LOCK_VENV)

# Installs the Debian packages that are missing (as root, or through sudo): `make system-quick`
# for the quick preset, `make system-test` (= `make system`) for the tests. Without apt-get
# (macOS, other Linux distributions) it says what it leaves out and goes on.
system-quick:
	@$(MAKE) --no-print-directory _apt APT_PACKAGES="$(QUICK_APT_PACKAGES)"

system-test system:
	@$(MAKE) --no-print-directory _apt APT_PACKAGES="$(TEST_APT_PACKAGES)"

_apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ] && ! command -v apt-get >/dev/null 2>&1; then \
	  echo "no apt-get (not Debian or Ubuntu): not installing" $$missing"."; \
	  echo "  Fashion-MNIST is then downloaded by the workflow (allow_download: true) and"; \
	  echo "  checksummed; tests that need a missing package skip and say why."; \
	elif [ -n "$$missing" ]; then \
	  sudo=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  echo "installing Debian packages:" $$missing; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The quick preset writes under runs/quick/ (its output_root): runs/quick/figures/fig1.pdf, ...
quick: setup system-quick  ## set up, then run the quick preset: every figure, in runs/quick/
	$(BIN)/snakemake --cores $(CORES) --configfile presets/quick.yaml

# The class-channel study (presets/diagnosis.yaml) writes under runs/diagnosis/.
diagnosis: setup system-quick  ## set up, then run the class-channel diagnosis (Fig. 8), in runs/diagnosis/
	$(BIN)/snakemake --cores $(CORES) --configfile presets/diagnosis.yaml

full: setup  ## the paper at full scale: snakemake --cores 8 --resources gpu=1
	$(BIN)/snakemake --cores 8 --resources gpu=1

# The gallery (docs/figures/*.png), the results pages (docs/results/*.md) and the README's
# verdict and class-channel tables, from runs/quick (and runs/diagnosis, docs/gpu/; labaug/docs.py).
docs: setup  ## regenerate the docs' figures, results pages and README tables (after make quick)
	$(BIN)/python -m labaug.docs

lint: setup  ## ruff, mypy, snakemake --lint, snakefmt --check
	$(BIN)/ruff check .
	$(BIN)/mypy labaug
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

test: setup system-test lint  ## set up, then lint, type-check and run the tests (= .ci/run)
	$(BIN)/pytest -ra -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

clean:  ## delete results/, figures/, logs/, checkpoints/, runs/, .snakemake/, report.html
	rm -rf results figures logs checkpoints runs .snakemake report.html
