#!/usr/bin/env python
"""Post-processing choices for HC, decided on hc18_val (examinations never trained on).

    .venv/bin/python benchmarks/hc18_postprocess.py --model CKPT --config CFG [--limit N]

Runs the network once per val image (and once on its horizontal mirror), keeps the raw
detections, and scores the variants that only change what happens after the network:

* mask threshold (0.3 .. 0.65) on the best-scoring instance's mask probabilities;
* where the ellipse is fitted: the sub-pixel iso-contour of the RoI mask probabilities
  (``roi_contour``, what HeadRCNN does) or the contour of the mask pasted into the full
  image as Detectron2's postprocessing does (``pasted_mask``);
* test-time flip averaging off/on.

For a model with a head refiner (``HCMEASURE.HEAD_REFINER``), the refiner is then run on
the crop around each image's detection (the detector's mask at 0.5 gives the box, as in
predict) and its variants are scored too: threshold of the refiner's probabilities, flip
averaging of the crop, a second crop-and-measure round, a crop context other than the
trained one (0.075 and 0.125 of the box per side instead of 0.1), and the mean of the
detector's and the refiner's ellipses (``refiner_variants``).

Writes ``benchmarks/results/hc18_postprocess.json`` (MAD / MSD in mm per variant).
"""
import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path)
    p.add_argument("--config", type=Path)
    p.add_argument("--limit", type=int, default=0)
    args = p.parse_args(argv)

    from detectron2.layers.mask_ops import paste_masks_in_image
    from detectron2.structures import Boxes

    from hcmeasure.cli.predict import resolve_model
    from hcmeasure.data.hc18 import load_hc18_dicts, resolve_root
    from hcmeasure.io.images import read_scan
    from hcmeasure.measurement.head import (
        HeadMeasurement,
        measure_head_from_mask,
        measure_head_from_mask_probs,
    )
    from hcmeasure.modeling.meta_arch.head_rcnn import HeadRCNN
    from hcmeasure.predictor import HeadPredictor

    config, weights = resolve_model(args.model, args.config)
    predictor = HeadPredictor(config, weights, device="cpu")
    model = predictor.model
    dicts = load_hc18_dicts(resolve_root(), "val")
    if args.limit:
        dicts = dicts[: args.limit]

    raws = []  # per image: [(box_orig_xyxy, probs, score) or None] for original and mirrored input
    t0 = time.perf_counter()
    with torch.inference_mode():
        for d in dicts:
            x = predictor.preprocess(read_scan(d["file_name"]))
            flipped = dict(x, image=torch.flip(x["image"], dims=[-1]))
            out = model.inference([x, flipped], do_postprocess=False)
            h, w = x["height"], x["width"]
            ih, iw = x["image"].shape[-2:]
            per = []
            for inst in out:
                if len(inst) == 0:
                    per.append(None)
                    continue
                best = int(torch.argmax(inst.scores))
                box = inst.pred_boxes.tensor[best].numpy() * np.array([w / iw, h / ih, w / iw, h / ih])
                per.append((box, inst.pred_masks[best, 0].numpy(), float(inst.scores[best])))
            raws.append(per)
    network_s = time.perf_counter() - t0

    def measure(raw, thr, where, shape):
        if raw is None:
            return HeadMeasurement(None, None, None, "no_head_detected")
        box, probs, score = raw
        if where == "roi_contour":
            return measure_head_from_mask_probs(probs, tuple(box), shape, score=score, mask_threshold=thr)
        pasted = paste_masks_in_image(torch.from_numpy(probs)[None], Boxes(torch.tensor(box[None], dtype=torch.float32)),
                                      shape, threshold=thr)[0].numpy()
        return measure_head_from_mask(pasted, score)

    results = []
    for where in ("roi_contour", "pasted_mask"):
        for thr in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65):
            for tta in (False, True):
                if where == "pasted_mask" and tta:
                    continue  # the pasted variant without TTA only
                heads = []
                for d, raw in zip(dicts, raws):
                    shape = (d["height"], d["width"])
                    head = measure(raw[0], thr, where, shape)
                    if tta:
                        head = HeadRCNN._combine(head, measure(raw[1], thr, where, shape), d["width"])
                    heads.append(head)
                results.append(score_heads(dicts, heads, fit_on=where, mask_threshold=thr, flip_tta=tta))
    refiner_results = []
    if predictor.refiner is not None:
        detected = []
        for d, raw in zip(dicts, raws):
            head = measure(raw[0], 0.5, "roi_contour", (d["height"], d["width"]))
            detected.append(head if raw[0] is None else dataclasses.replace(head, box=tuple(raw[0][0])))
        refiner_results = score_refiner(predictor.refiner, dicts, detected)
    dest = REPO / "benchmarks" / "results" / "hc18_postprocess.json"
    from hcmeasure.io.tables import write_json_atomic

    write_json_atomic(dest, {
        "command": " ".join(["python", "benchmarks/hc18_postprocess.py"] + (argv or sys.argv[1:])),
        "model": str(weights), "n_images": len(dicts), "network_s": round(network_s, 1),
        "variants": results, "refiner_variants": refiner_results}, indent=2)
    print(f"wrote {dest}")


def score_heads(dicts, heads, **info) -> dict:
    """One result row: ``info``, the number of heads without an ellipse, and the HC
    differences (mm) of the others against the dicts' reference HC; printed as well."""
    from hcmeasure.evaluation.hc18 import hc_differences
    from hcmeasure.measurement import head_circumference_mm

    pred, truth, failed = [], [], 0
    for d, head in zip(dicts, heads):
        if head.ellipse is None:
            failed += 1
            continue
        pred.append(head_circumference_mm(head.ellipse, d["pixel_size_mm"]))
        truth.append(d["hc_mm"])
    stats = hc_differences(pred, truth)
    row = {**info, "failed": failed,
           **{k: round(float(v), 3) for k, v in stats.items() if isinstance(v, (int, float))}}
    print(row, flush=True)
    return row


def score_refiner(refiner, dicts, detected):
    """MAD/MSD of the refiner's variants, from the detector's measurements (with boxes)."""
    from hcmeasure.io.images import read_scan
    from hcmeasure.modeling.head_refiner import HeadContourRefiner
    from hcmeasure.modeling.meta_arch.head_rcnn import average_ellipses

    grays = [read_scan(d["file_name"]) for d in dicts]

    def run(**kw):
        kw.setdefault("context", refiner.context)
        r = HeadContourRefiner(refiner.model, crop_size=refiner.crop_size, **kw)
        return [r.refine([g], [h])[0] for g, h in zip(grays, detected)]

    def row(name, heads, **info):
        return score_heads(dicts, heads, variant=name, **info)

    rows = [row("detector alone", detected, mask_threshold=0.5)]
    for tta in (False, True):
        for thr in (0.4, 0.45, 0.5, 0.55, 0.6):
            rows.append(row("refiner", run(mask_threshold=thr, flip_tta=tta), mask_threshold=thr, flip_tta=tta,
                            rounds=1))
        rows.append(row("refiner", run(flip_tta=tta, rounds=2), mask_threshold=0.5, flip_tta=tta, rounds=2))
    # The crop's context (growth of the box per side) the refiner was not trained at.
    for context in (0.075, 0.125):
        rows.append(row("refiner", run(context=context), mask_threshold=0.5, flip_tta=False, rounds=1,
                        context=context))
    refined = run()
    mean = [r if (d.ellipse is None or r.ellipse is None) else
            dataclasses.replace(r, ellipse=average_ellipses([d.ellipse, r.ellipse]))
            for d, r in zip(detected, refined)]
    rows.append(row("mean of detector and refiner ellipses", mean, mask_threshold=0.5, flip_tta=False, rounds=1))
    return rows


if __name__ == "__main__":
    main()
