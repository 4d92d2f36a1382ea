# One command sets everything up and runs the tests:   make test
# A second run with nothing changed reuses .venv (the stamp file below).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hcmeasure-installed

.PHONY: install test test-fast demo doctor clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements/torch.txt tools/install_detectron2.py Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade "pip>=23"
	$(BIN)/python -m pip install -r requirements/torch.txt
	$(BIN)/python tools/install_detectron2.py
	$(BIN)/python -m pip install -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest tests

doctor: $(STAMP)
	$(BIN)/hcmeasure doctor

clean:
	rm -rf $(VENV) build *.egg-info
