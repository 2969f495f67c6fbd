# Two entry points for a fresh machine with Python 3.11:
#   make quick   set everything up, then run the quick preset (every figure)
#   make test    set everything up, then run the test suite and the project's checks
# Both create and reuse the virtualenv .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
# Debian packages. The quick preset needs only real Fashion-MNIST offline; the tests also need
# a one-node SLURM for the cluster test and Chromium to render the Snakemake report.
QUICK_APT_PACKAGES := dataset-fashion-mnist
TEST_APT_PACKAGES := $(QUICK_APT_PACKAGES) slurm-wlm munge chromium

.PHONY: setup system system-quick system-test quick full test lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/.installed

# Installs the Debian packages that are missing (as root, or through sudo): `make system-quick`
# for the quick preset, `make system-test` (= `make system`) for the tests.
system-quick:
	@$(MAKE) --no-print-directory _apt APT_PACKAGES="$(QUICK_APT_PACKAGES)"

system-test system:
	@$(MAKE) --no-print-directory _apt APT_PACKAGES="$(TEST_APT_PACKAGES)"

_apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  sudo=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  echo "installing Debian packages:" $$missing; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The quick preset writes under runs/quick/ (its output_root): runs/quick/figures/fig1.pdf, ...
quick: setup system-quick
	$(BIN)/snakemake --cores $(CORES) --configfile presets/quick.yaml

full: setup
	$(BIN)/snakemake --cores 8 --resources gpu=1

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy labaug
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

test: setup system-test lint
	$(BIN)/pytest -ra

clean:
	rm -rf results figures logs checkpoints runs .snakemake report.html
