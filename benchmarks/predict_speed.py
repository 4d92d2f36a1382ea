#!/usr/bin/env python
"""Speed of ``hcmeasure predict`` versus a hand-written Detectron2 ``DefaultPredictor`` loop.

    .venv/bin/python benchmarks/predict_speed.py [--model CKPT --config CFG] [--images DIR] [--n 24]
                                                 [--device cpu|cuda] [--batch-size N] [--repeats 5]
                                                 [--reference-model DIR]

Both runs use the same model and images (default: the first N HC18 test images).
``hcmeasure predict`` is timed end to end (reading, pre-processing, network, ellipse
fit, CSVs, overlays) after the model is loaded; the time inside the networks' forward
passes is measured by wrapping ``GeneralizedRCNN.inference`` (and, for a model with a
head refiner, the refiner's ``SemanticSegmentor.forward``), and the rest is reported
as the non-network share. The baseline is what a user would write by hand: read with
OpenCV, ``DefaultPredictor(image)``, then fit the ellipse on the pasted head mask; with
a head refiner, the refiner (built and loaded the plain Detectron2 way) is then run on
the crop around the best detection and the ellipse fitted on its output.
``--reference-model DIR`` also times ``hcmeasure predict`` with the model published in DIR
(its ``config.yaml`` and ``model_final.pth``) in every repeat, e.g. a single detector +
refiner against the default ensemble, and reports the per-repeat ratio.
Writes ``benchmarks/results/predict_speed_<device>[_<tag>].json``.
"""
import argparse
import contextlib
import dataclasses
import io
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path)
    p.add_argument("--config", type=Path)
    p.add_argument("--images", type=Path, help="folder of scans (default: HC18 test_set)")
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--repeats", type=int, default=5,
                   help="alternate the two timed runs this many times and report medians "
                        "(a shared 2-core machine varies by about +-15 %% from run to run)")
    p.add_argument("--reference-model", type=Path, default=None,
                   help="published model folder to time with predict in the same repeats")
    p.add_argument("--tag", default="", help="suffix of the result file name")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats {args.repeats}: must be at least 1")

    from detectron2.engine import DefaultPredictor
    from detectron2.modeling import GeneralizedRCNN

    from hcmeasure.measurement.head import HeadMeasurement
    from hcmeasure.modeling.head_refiner import HeadContourRefiner
    from hcmeasure.semseg.segmentor import SemanticSegmentor

    from hcmeasure.cli.main import main as cli
    from hcmeasure.cli.predict import resolve_model
    from hcmeasure.data.hc18 import TEST_DIR, resolve_root
    from hcmeasure.measurement.head import measure_head_from_instances
    from hcmeasure.predictor import head_refiner_paths, load_config
    from hcmeasure.modeling.checkpoint import HCMeasureCheckpointer
    from hcmeasure.modeling.loading import load_model

    config, weights = resolve_model(args.model, args.config)
    src = args.images or resolve_root() / TEST_DIR
    images = sorted(q for q in src.iterdir() if q.suffix.lower() == ".png")[: args.n]
    forward_s = [0.0]
    original = GeneralizedRCNN.inference
    original_semantic = SemanticSegmentor.forward

    def timer(fn):
        def timed(self, *a, **k):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            out = fn(self, *a, **k)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            forward_s[0] += time.perf_counter() - t
            return out

        return timed

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "scans"
        folder.mkdir()
        for q in images:
            shutil.copy(q, folder / q.name)
        # warm-up run (model load, first-call allocations), then the timed run
        warm = tmp / "warm"
        warm.mkdir()
        shutil.copy(images[0], warm / images[0].name)
        base = ["--model", str(weights), "--config", str(config), "--device", args.device,
                "--pixel-size", "0.1"]
        cli(["predict", str(warm), "--out", str(tmp / "w")] + base)
        cfg = load_config(config, device=args.device)
        predictor = DefaultPredictor(cfg)
        HCMeasureCheckpointer(predictor.model).load(str(weights))
        predictor(cv2.imread(str(images[0])))  # warm-up
        refiner = None
        refiner_paths = head_refiner_paths(cfg, config)
        if refiner_paths is not None:
            rcfg = load_config(refiner_paths[0], device=args.device)
            rmodels = [load_model(rcfg, w, config_file=refiner_paths[0])[1] for w in refiner_paths[1]]
            refiner = HeadContourRefiner(rmodels, crop_size=rcfg.HCMEASURE.HEAD_CROP.SIZE,
                                         context=rcfg.HCMEASURE.HEAD_CROP.CONTEXT)
            warm_gray = cv2.imread(str(images[0]), cv2.IMREAD_GRAYSCALE)
            refiner.refine([warm_gray], [HeadMeasurement(None, None, None, "ok", box=(100, 100, 300, 300))])

        runs = []  # (predict total s, predict forward s, DefaultPredictor loop s) per repeat
        references = []  # predict total s with --reference-model, per repeat
        for rep in range(args.repeats):
            GeneralizedRCNN.inference = timer(original)
            SemanticSegmentor.forward = timer(original_semantic)
            try:
                forward_s[0] = 0.0
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    batch = ["--batch-size", str(args.batch_size)] if args.batch_size else []
                    cli(["predict", str(folder), "--out", str(tmp / f"out{rep}")] + batch + base)
                # The CLI's summary times the folder run after the model is loaded.
                total_s = float(re.search(r"image\(s\) in ([0-9.]+) s", buf.getvalue()).group(1))
                print(buf.getvalue().strip())
            finally:
                GeneralizedRCNN.inference = original
                SemanticSegmentor.forward = original_semantic
            ours_forward = forward_s[0]
            reference_s = None
            if args.reference_model is not None:
                ref = ["--model", str(args.reference_model / "model_final.pth"),
                       "--config", str(args.reference_model / "config.yaml"), "--device", args.device,
                       "--pixel-size", "0.1"]
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    if rep == 0:  # warm-up of the reference model
                        cli(["predict", str(warm), "--out", str(tmp / "w_ref")] + ref)
                    cli(["predict", str(folder), "--out", str(tmp / f"ref{rep}")] + ref)
                reference_s = float(re.findall(r"image\(s\) in ([0-9.]+) s", buf.getvalue())[-1])

            t = time.perf_counter()
            for q in images:
                img = cv2.imread(str(q))
                out = predictor(img)
                head = measure_head_from_instances(out["instances"].to("cpu"))
                inst = out["instances"]
                if refiner is not None and len(inst):
                    best = int(inst.scores.argmax())
                    box = tuple(float(v) for v in inst.pred_boxes.tensor[best].cpu())
                    head = dataclasses.replace(head, box=box)
                    refiner.refine([cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)], [head])
            baseline_s = time.perf_counter() - t
            runs.append((total_s, ours_forward, baseline_s))
            references.append(reference_s)
            print(f"repeat {rep + 1}: predict {total_s / len(images):.3f} s/image, "
                  f"DefaultPredictor loop {baseline_s / len(images):.3f} s/image"
                  + (f", reference model {reference_s / len(images):.3f} s/image" if reference_s else ""), flush=True)

    n = len(images)
    total_s, ours_forward, baseline_s = (float(np.median(v)) for v in zip(*runs))
    shares = [1 - f / t for t, f, _ in runs]
    result = {
        "command": " ".join(["python", "benchmarks/predict_speed.py"] + (argv or sys.argv[1:])),
        "device": args.device if args.device != "cuda" else torch.cuda.get_device_name(0),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), torch threads {torch.get_num_threads()}",
        "n_images": n,
        "batch_size": args.batch_size or "default (1 on CPU, 4 on CUDA)",
        "model": str(weights),
        "hcmeasure_predict_s_per_image": round(total_s / n, 4),
        "network_forward_s_per_image": round(ours_forward / n, 4),
        "non_network_share": round(1 - ours_forward / total_s, 4),
        "default_predictor_loop_s_per_image": round(baseline_s / n, 4),
        # Each repeat runs predict and the loop back to back, so their ratio within a
        # repeat is less exposed to the machine's drift than the two medians are.
        "predict_over_loop_ratio_median": round(float(np.median([t / b for t, _, b in runs])), 3),
        "repeats": args.repeats,
        "per_repeat_s_per_image": [
            {"hcmeasure_predict": round(t / n, 4), "default_predictor_loop": round(b / n, 4),
             "non_network_share": round(sh, 4)} for (t, _, b), sh in zip(runs, shares)],
    }
    if args.reference_model is not None:
        result["reference_model"] = str(args.reference_model)
        result["reference_predict_s_per_image"] = round(float(np.median(references)) / n, 4)
        result["predict_over_reference_ratio_median"] = round(
            float(np.median([t / r for (t, _, _), r in zip(runs, references)])), 3)
        for rec, r in zip(result["per_repeat_s_per_image"], references):
            rec["reference_predict"] = round(r / n, 4)
    suffix = f"_{args.tag}" if args.tag else ""
    dest = REPO / "benchmarks" / "results" / f"predict_speed_{args.device}{suffix}.json"
    from hcmeasure.io.tables import write_json_atomic

    write_json_atomic(dest, result, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
