# One command sets everything up and runs the tests:   make test
# A second run with nothing changed reuses .venv (the stamp file below).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hcmeasure-installed

.PHONY: install test demo doctor val-benchmark speed-benchmark clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements/torch.txt tools/install_detectron2.py
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

# Measure the sample HC18 test images with the default model.
demo: $(STAMP)
	$(BIN)/hcmeasure predict samples/hc18 --pixel-size-csv samples/hc18/pixel_size.csv --out demo_output
	@echo "results: demo_output/measurements.csv, demo_output/submission.csv, demo_output/overlays/"

# Accuracy of the default model on hc18_val (predict + evaluate), and its speed.
val-benchmark: $(STAMP)
	$(BIN)/python benchmarks/hc18_val.py --tag default

speed-benchmark: $(STAMP)
	$(BIN)/python benchmarks/predict_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
