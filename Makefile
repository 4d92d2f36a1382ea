# One command sets everything up and runs the tests:   make test
# A second run with nothing changed reuses .venv (the stamp file below).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hcmeasure-installed

.PHONY: install test demo doctor val-benchmark trust-benchmark speed-benchmark scale-benchmark browser-test tiled-memory clean browser-deps dicom-deps web-deps

install: $(STAMP)

$(STAMP): pyproject.toml requirements/torch.txt tools/install_detectron2.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade "pip>=23"
	$(BIN)/python -m pip install -r requirements/torch.txt
	$(BIN)/python tools/install_detectron2.py
	$(BIN)/python -m pip install -e ".[test]"
	touch $(STAMP)

# The tools some tests run (Chromium, dciodvfy) are installed first where that is
# possible (root and apt-get); elsewhere those tests are skipped and say why.
test: $(STAMP) browser-deps dicom-deps web-deps
	$(BIN)/python -m pytest tests

# Headless Chromium for the HTML report test (tests/cli/test_report.py); that test is
# skipped, saying so, without it. Installs only when missing, and only as root (Debian/Ubuntu).
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; } || \
		echo "chromium could not be installed; the browser test will be skipped."; \
	else echo "chromium is not installed and cannot be installed here (needs root and apt-get);" \
		"the browser test will be skipped."; fi

# dciodvfy (Debian's dicom3tools) validates the DICOM SRs of 'predict --dicom-sr'
# (tests/io/test_dicom_sr.py); that test is skipped, saying so, without it. Installs only
# when missing, and only as root (Debian/Ubuntu).
dicom-deps:
	@if command -v dciodvfy >/dev/null 2>&1; then echo "dciodvfy: $$(command -v dciodvfy)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dicom3tools; } || \
		echo "dicom3tools could not be installed; the DICOM SR validation test will be skipped."; \
	else echo "dciodvfy is not installed and cannot be installed here (needs root and apt-get);" \
		"the DICOM SR validation test will be skipped."; fi

doctor: $(STAMP)
	$(BIN)/hcmeasure doctor

# Measure the sample HC18 test images with the default model; the report's growth chart
# uses the illustrative gestational ages of samples/hc18/demo_known_ga.csv (see its README).
demo: $(STAMP)
	$(BIN)/hcmeasure predict samples/hc18 --pixel-size-csv samples/hc18/demo_known_ga.csv --out demo_output --report
	@echo "results: demo_output/measurements.csv, demo_output/submission.csv, demo_output/overlays/, demo_output/report.html"

# Accuracy on hc18_val (predict + evaluate) of the default's single-model config: its
# detector and refiner member 0 never trained on hc18_val (members 1-4 did).
val-benchmark: $(STAMP)
	$(BIN)/python benchmarks/hc18_val.py --config hcmeasure/model_zoo/hc18_default/config_single.yaml --tag single

# The out-of-fold figures over all 809 labelled images, the interval's coverage and the
# review flag's catch rate, recomputed from the committed out-of-fold CSV (no model run;
# docs/trust.md).
trust-benchmark: $(STAMP)
	$(BIN)/python benchmarks/hc18_cv.py report

# predict's speed with the default ensemble against the plain Detectron2 loop and against
# the previous default (one detector + one refiner), taken from git history.
PREVIOUS_DEFAULT := 15fc647
speed-benchmark: $(STAMP)
	@ref=$$(mktemp -d) && git archive $(PREVIOUS_DEFAULT) hcmeasure/model_zoo/hc18_default | tar -x -C $$ref && \
	$(BIN)/python benchmarks/predict_speed.py --n 47 --repeats 3 --reference-model $$ref/hcmeasure/model_zoo/hc18_default; \
	rc=$$?; rm -rf $$ref; exit $$rc

# Memory of predict against the number of files: 3000 links to the HC18 test scans
# (3000 x predict's s/image); writes benchmarks/results/predict_scale_3000.json.
scale-benchmark: $(STAMP)
	$(BIN)/python benchmarks/predict_scale.py --n 3000

# Browser-side prediction (web/): npm packages, then the headless-Chromium test
# (needs Debian's chromium at /usr/bin/chromium or $$CHROMIUM; screenshot in web/test-output/).
# npm packages of the browser-side prediction test (tests/web): installed from the npm
# registry when npm is there and web/node_modules is missing; the test skips, saying so, without them.
web-deps:
	@if [ -f web/node_modules/onnxruntime-web/package.json ] && [ -f web/node_modules/puppeteer-core/package.json ]; then \
		echo "web/node_modules: present"; \
	elif command -v npm >/dev/null 2>&1; then \
		(cd web && npm ci --no-audit --no-fund) || echo "npm ci failed; the browser test will be skipped."; \
	else echo "npm is not installed; the browser test will be skipped."; fi

browser-test: $(STAMP) browser-deps
	cd web && npm ci --no-audit --no-fund
	$(BIN)/python -m pytest tests/web -s

# Peak memory of whole-image vs tiled inference of a 1200x1600 image (cell U-Net).
tiled-memory: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/tiled_memory.py --out benchmarks/results/tiled_memory.json

clean:
	rm -rf $(VENV) build *.egg-info
