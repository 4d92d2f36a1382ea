#!/usr/bin/env python
"""Out-of-fold figures of the five-fold cross-validation over every labelled HC18 image,
and the trust calibration (interval and review rules) fitted on them.

    # 1. each fold's images measured by that fold's models (tools/train_cv.py trained them)
    .venv/bin/python benchmarks/hc18_cv.py predict --folds 0 1 2 3 4
    # 2. the five folds' rows into the committed CSV
    .venv/bin/python benchmarks/hc18_cv.py collect
    # 3. figures, interval coverage and review catch rate, from the committed CSV alone
    .venv/bin/python benchmarks/hc18_cv.py report [--write-calibration hcmeasure/model_zoo/.../trust.json]

``predict`` measures ``hc18_cv5_f{k}_val`` with the detector and head refiner trained on
the other four folds (``OUTPUT_ROOT/f{k}/{detector,head_refiner}/model_final.pth``), so
neither the box nor the outline of any image comes from a model that saw it. ``--model-dir
DIR`` measures instead with a published model (its ``config.yaml``), e.g. the shipped
default on fold 4, which it never trained on. Rows: reference and measured HC, Dice and
Hausdorff distance against the annotation ellipse, and the trust features
(hcmeasure.measurement.trust).

``report`` is cross-fitted: for each fold, the interval's sigma model and conformal
quantile and the review rules are chosen on the other four folds' rows and applied to
this fold's, so the coverage, width and catch rate it prints are for images that no choice
was made on. ``--write-calibration`` then fits them once on all rows, for shipping.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OOF = REPO / "benchmarks/results/hc18_cv5_oof.csv"
BANDS_MM = ((0, 100), (100, 200), (200, 250), (250, 1e9))
#: The measured ellipse's columns (pixels), in ``Ellipse`` argument order.
ELLIPSE_PX = ("center_x_px", "center_y_px", "semi_axes_a_px", "semi_axes_b_px", "angle_rad")
COLUMNS = [
    "filename", "fold", "exam_id", "pixel_size_mm", "truth_hc_mm", "hc_mm", "diff_mm", "status", "dice",
    "hausdorff_mm", "center_x_px", "center_y_px", "semi_axes_a_px", "semi_axes_b_px", "angle_rad", "models",
]


#: The detector recipe whose test-time settings every fold is measured with.
DETECTOR_RECIPE = REPO / "configs/HC18/cv5/mask_rcnn_effnet_lite0_FPN.yaml"
#: Test-time keys taken from :data:`DETECTOR_RECIPE` as it is now, so that a fold trained
#: before a test setting changed is measured as the published ensemble measures.
TEST_KEYS = ("INPUT.MIN_SIZE_TEST", "INPUT.MAX_SIZE_TEST", "HCMEASURE.INFERENCE.CPU_BF16")


def recipe_test_opts(recipe: Path = DETECTOR_RECIPE) -> list:
    """``[KEY, VALUE, ...]`` of :data:`TEST_KEYS` in ``recipe``."""
    from hcmeasure.modeling.loading import load_config

    cfg = load_config(recipe)
    opts = []
    for key in TEST_KEYS:
        node = cfg
        for part in key.split("."):
            node = node[part]
        opts += [key, node]
    return opts


def _fold_models(output_root: Path, fold: int, refiner_roots: Sequence[Path] = ()):
    """(detector config, detector weights, (refiner config, [refiner weights])) of one fold;
    the refiners from ``refiner_roots`` when given (variants trained apart)."""
    det = output_root / f"f{fold}" / "detector"
    if not (det / "model_final.pth").is_file():
        raise SystemExit(f"{det / 'model_final.pth'}: not trained yet; run tools/train_cv.py --folds {fold}")
    return det / "config.yaml", det / "model_final.pth", _fold_refiner(refiner_roots or [output_root], fold)


def _fold_refiner(roots: Sequence[Path], fold: int):
    """(config of the first root's refiner, [each root's fold-``fold`` refiner weights]):
    with several roots, their refiners are averaged as ensemble members, which share the
    first root's config (one architecture; a loss or schedule may differ)."""
    refs = [root / f"f{fold}" / "head_refiner" for root in roots]
    for ref in refs:
        if not (ref / "model_final.pth").is_file():
            raise SystemExit(f"{ref / 'model_final.pth'}: not trained yet; run tools/train_cv.py --folds {fold}")
    return refs[0] / "config.yaml", [ref / "model_final.pth" for ref in refs]


def reference_box(ellipse, shape, jitter: float, rng) -> tuple[float, float, float, float]:
    """The box of the reference ellipse, each edge moved by up to ``jitter`` of the box's
    width/height (uniform), kept inside the image: a stand-in detector of known error."""
    from hcmeasure.data.head_crops import ellipse_box

    box = np.asarray(ellipse_box(ellipse), float)
    w, h = box[2] - box[0], box[3] - box[1]
    box = box + rng.uniform(-jitter, jitter, 4) * np.array([w, h, w, h])
    return (max(0.0, box[0]), max(0.0, box[1]), min(float(shape[1]), box[2]), min(float(shape[0]), box[3]))


def predict(args) -> int:
    from hcmeasure.data.hc18 import fold_of, load_hc18_dicts
    from hcmeasure.evaluation.hc18 import image_metrics
    from hcmeasure.io.images import read_scan
    from hcmeasure.measurement.ellipse import Ellipse, ramanujan_perimeter
    from hcmeasure.measurement.head import HeadMeasurement
    from hcmeasure.measurement.trust import trust_features
    from hcmeasure.predictor import HeadPredictor, torch_threads_from_env

    torch_threads_from_env()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    variant = " + ".join(root.name for root in args.refiner_root)
    for fold in args.folds:
        if args.model_dir:
            refiner = _fold_refiner(args.refiner_root, fold) if args.refiner_root else None
            predictor = HeadPredictor(args.model_dir / "config.yaml", args.model_dir / "model_final.pth", device="cpu",
                                      opts=args.opts, refiner=refiner)
            models = str(args.model_dir.relative_to(REPO) if args.model_dir.is_relative_to(REPO) else args.model_dir)
            if refiner:
                models += f" detector + cv5 fold {fold} head refiner of {variant}"
        else:
            det_cfg, det_w, refiner = _fold_models(args.output_root, fold, args.refiner_root)
            opts = ([] if args.run_test_settings else recipe_test_opts()) + list(args.opts)
            predictor = HeadPredictor(det_cfg, det_w, device="cpu", refiner=refiner, opts=opts)
            models = f"cv5 fold {fold} detector + head refiner"
            if args.refiner_root:
                models += f" of {variant}"
        if args.box == "reference":
            if predictor.refiner is None:
                raise SystemExit("--box reference needs a model with a head refiner")
            models += f" on the reference box (edges moved up to {args.box_jitter:g})"
        rng = np.random.default_rng(0)
        dicts = load_hc18_dicts(split=f"cv5_f{fold}_val")
        if args.limit:
            dicts = dicts[: args.limit]
        rows, start = [], time.perf_counter()
        for d in dicts:
            gray = read_scan(d["file_name"])
            name = Path(d["file_name"]).name
            truth = Ellipse(**d["ellipse"])
            if args.box == "reference":
                box = reference_box(truth, gray.shape, args.box_jitter, rng)
                head = predictor.refiner.refine([gray], [HeadMeasurement(None, 1.0, None, "ok", box=box)])[0]
            else:
                head = predictor([gray])[0]
            row = {"filename": name, "fold": fold_of(name), "exam_id": d["exam_id"],
                   "pixel_size_mm": d["pixel_size_mm"], "truth_hc_mm": d["hc_mm"], "status": head.status,
                   "models": models}
            if head.ellipse is not None and head.status == "ok":
                hc = ramanujan_perimeter(head.ellipse.a, head.ellipse.b) * d["pixel_size_mm"]
                m = image_metrics(name, hc, d["hc_mm"], pred_ellipse=head.ellipse, truth_ellipse=truth,
                                  shape=gray.shape, pixel_size_mm=d["pixel_size_mm"])
                e = head.ellipse
                row.update(hc_mm=hc, diff_mm=m["diff_mm"], dice=m["dice"], hausdorff_mm=m["hausdorff_mm"],
                           center_x_px=e.cx, center_y_px=e.cy, semi_axes_a_px=e.a, semi_axes_b_px=e.b,
                           angle_rad=e.angle)
                row.update(trust_features(head, gray, hc))
            rows.append(row)
        seconds = time.perf_counter() - start
        path = args.out_dir / f"f{fold}.csv"
        _write_csv(path, rows)
        diffs = np.array([r["diff_mm"] for r in rows if r.get("diff_mm") is not None])
        print(f"fold {fold}: {len(rows)} images in {seconds:.0f} s, MAD {np.abs(diffs).mean():.3f} mm "
              f"({len(diffs)} measured) -> {path}", flush=True)
    return 0


def _fmt(v):
    if v is None or v == "":
        return ""
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    return str(v)


def _write_csv(path: Path, rows: list[dict]) -> None:
    from hcmeasure.io.tables import write_csv_atomic
    from hcmeasure.measurement.trust import FEATURE_NAMES

    write_csv_atomic(path, COLUMNS + list(FEATURE_NAMES), [{k: _fmt(v) for k, v in r.items()} for r in rows])


def collect(args) -> int:
    rows = []
    for fold in range(5):
        path = args.out_dir / f"f{fold}.csv"
        if not path.is_file():
            print(f"warning: {path} missing: fold {fold} is not in the collected CSV", file=sys.stderr)
            continue
        with open(path, newline="") as f:
            rows += list(csv.DictReader(f))
    from hcmeasure.io.tables import write_csv_atomic
    from hcmeasure.measurement.trust import FEATURE_NAMES

    write_csv_atomic(args.oof, COLUMNS + list(FEATURE_NAMES), rows)
    print(f"{len(rows)} rows -> {args.oof}")
    return 0


# ----------------------------------------------------------------------------- report


def _load_oof(path: Path) -> list[dict]:
    from hcmeasure.measurement.trust import FEATURE_NAMES

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        rec = {"filename": r["filename"], "fold": int(r["fold"]), "exam_id": int(r["exam_id"]),
               "status": r["status"], "truth_hc_mm": float(r["truth_hc_mm"])}
        for k in ("hc_mm", "diff_mm", "dice", "hausdorff_mm", *ELLIPSE_PX, *FEATURE_NAMES):
            rec[k] = float(r[k]) if r.get(k) not in (None, "") else float("nan")
        out.append(rec)
    return out


def _abs_error_mm(row: dict) -> float:
    """|HC difference|; an image without a measurement counts with its reference HC."""
    return abs(row["diff_mm"]) if math.isfinite(row["diff_mm"]) else row["truth_hc_mm"]


def paired_change(reference: list[dict], rows: list[dict]) -> dict:
    """Image by image over the files both hold: the mean change in absolute HC error of
    ``rows`` against ``reference`` and its standard error (mm)."""
    before = {r["filename"]: _abs_error_mm(r) for r in reference}
    change = np.array([_abs_error_mm(r) - before[r["filename"]] for r in rows if r["filename"] in before])
    return {"n": len(change), "mean_mm": float(change.mean()) if len(change) else None,
            "se_mm": float(change.std(ddof=1) / math.sqrt(len(change))) if len(change) > 1 else None}


def accuracy_table(rows: list[dict]) -> dict:
    """MAD, median, MSD, DSC, HD overall and by reference-HC band; an image without a
    measurement counts with its reference HC as the error (HC18's leaderboard counts
    every image)."""
    def stats(sub):
        d = np.array([r["diff_mm"] if math.isfinite(r["diff_mm"]) else -r["truth_hc_mm"] for r in sub])
        dsc = np.array([r["dice"] if math.isfinite(r["dice"]) else 0.0 for r in sub])
        hd = np.array([r["hausdorff_mm"] for r in sub if math.isfinite(r["hausdorff_mm"])])
        return {"n": len(sub), "mad_mm": float(np.abs(d).mean()) if len(d) else None,
                "sd_abs_mm": float(np.abs(d).std(ddof=1)) if len(d) > 1 else None,
                "median_abs_mm": float(np.median(np.abs(d))) if len(d) else None,
                "msd_mm": float(d.mean()) if len(d) else None, "sd_mm": float(d.std(ddof=1)) if len(d) > 1 else None,
                "dice_pct": 100 * float(dsc.mean()) if len(dsc) else None,
                "hd_mm": float(hd.mean()) if len(hd) else None,
                "n_not_measured": sum(1 for r in sub if not math.isfinite(r["diff_mm"]))}
    table = {"all": stats(rows)}
    for lo, hi in BANDS_MM:
        name = f"{lo}-{hi}" if hi < 1e8 else f">{lo}"
        table[name] = stats([r for r in rows if lo <= r["truth_hc_mm"] < hi])
    return table


def crossfit_groups(rows: list[dict]) -> dict[str, list[dict]]:
    """The parts the calibration is cross-fitted over: the folds, or, when the rows hold one
    fold only, its examinations split in two by the parity of their number."""
    folds = sorted({r["fold"] for r in rows})
    if len(folds) > 1:
        return {f"fold {k}": [r for r in rows if r["fold"] == k] for k in folds}
    return {f"fold {folds[0]} exams {p}": [r for r in rows if r["exam_id"] % 2 == i]
            for i, p in enumerate(("even", "odd"))}


def trust_table(rows: list[dict], coverage: float = 0.9) -> dict:
    """Cross-fitted interval and review figures: each part's rows (:func:`crossfit_groups`)
    get the calibration fitted on the other parts' rows. Unmeasured images are flagged by
    their status, not by a rule."""
    from hcmeasure.measurement.trust import fit_trust_calibration

    groups = crossfit_groups(rows)
    per_fold, scored = {}, []
    for k, test in groups.items():
        train = [r for name, part in groups.items() if name != k for r in part if math.isfinite(r["hc_mm"])]
        cal = fit_trust_calibration(train, coverage=coverage)
        covered, widths, flagged = [], [], []
        for r in test:
            if not math.isfinite(r["hc_mm"]):
                scored.append(dict(r, flagged=True, covered=False, width=float("nan"), reasons=[r["status"]]))
                continue
            lo, hi = cal.interval(r["hc_mm"], r)
            reasons = cal.review_reasons(r, r["hc_mm"])
            rec = dict(r, covered=lo <= r["truth_hc_mm"] <= hi, width=hi - lo, flagged=bool(reasons), reasons=reasons)
            scored.append(rec)
            covered.append(rec["covered"])
            widths.append(rec["width"])
            flagged.append(rec["flagged"])
        per_fold[k] = {"n": len(test), "coverage_pct": 100 * float(np.mean(covered)),
                       "mean_width_mm": float(np.mean(widths)), "flag_pct": 100 * float(np.mean(flagged)),
                       "q": cal.q, "rules": [ru.to_json() for ru in cal.rules]}
    measured = [r for r in scored if math.isfinite(r["hc_mm"])]
    err = np.array([abs(r["diff_mm"]) for r in measured])
    flag = np.array([r["flagged"] for r in measured])
    out = {"coverage_target_pct": 100 * coverage, "per_fold": per_fold,
           "coverage_pct": 100 * float(np.mean([r["covered"] for r in measured])),
           "mean_width_mm": float(np.mean([r["width"] for r in measured])),
           "median_width_mm": float(np.median([r["width"] for r in measured])),
           "flag_pct": 100 * float(np.mean([r["flagged"] for r in scored])), "catch": {}}
    for limit in (5.0, 10.0):
        big = err > limit
        out["catch"][f">{limit:g}mm"] = {"n": int(big.sum()), "flagged": int((big & flag).sum()),
                                         "catch_pct": 100 * float((big & flag).sum() / big.sum()) if big.any() else None}
    unflagged = [r for r in scored if not r["flagged"]]
    out["unflagged"] = accuracy_table(unflagged)["all"] if unflagged else None
    reasons = {}
    for r in scored:
        for why in r["reasons"]:
            reasons[why] = reasons.get(why, 0) + 1
    out["reasons"] = reasons
    out["worst"] = [{"filename": r["filename"], "fold": r["fold"], "truth_hc_mm": r["truth_hc_mm"],
                     "diff_mm": r["diff_mm"], "flagged": r["flagged"], "reasons": r["reasons"]}
                    for r in sorted(measured, key=lambda r: -abs(r["diff_mm"]))[:20]]
    return out


def _print_accuracy(table: dict) -> None:
    print(f"{'band (mm)':<10} {'n':>4} {'MAD':>6} {'±SD':>6} {'median':>7} {'MSD':>6} {'DSC %':>6} {'HD':>5}")
    for band, s in table.items():
        if not s["n"]:
            continue
        print(f"{band:<10} {s['n']:>4} {s['mad_mm']:>6.2f} {s['sd_abs_mm'] or 0:>6.2f} {s['median_abs_mm']:>7.2f} "
              f"{s['msd_mm']:>+6.2f} {s['dice_pct']:>6.2f} {s['hd_mm'] or float('nan'):>5.2f}")


def report(args) -> int:
    from hcmeasure.measurement.trust import fit_trust_calibration

    rows = _load_oof(args.oof)
    folds = sorted({r["fold"] for r in rows})
    result = {"oof_csv": str(args.oof.relative_to(REPO) if args.oof.is_relative_to(REPO) else args.oof),
              "folds": folds, "command": " ".join(["benchmarks/hc18_cv.py"] + sys.argv[1:]),
              "accuracy": accuracy_table(rows)}
    print(f"out-of-fold accuracy, {len(rows)} images, folds {folds}")
    _print_accuracy(result["accuracy"])
    trust = trust_table(rows)
    result["trust"] = trust
    print(f"\n90 % interval (cross-fitted): coverage {trust['coverage_pct']:.1f} %, "
          f"mean width {trust['mean_width_mm']:.2f} mm (median {trust['median_width_mm']:.2f})")
    for k, f in trust["per_fold"].items():
        print(f"  {k}: coverage {f['coverage_pct']:.1f} %, width {f['mean_width_mm']:.2f} mm, "
              f"flagged {f['flag_pct']:.1f} %")
    print(f"review flag: {trust['flag_pct']:.1f} % of images flagged; " + ", ".join(
        f"{k}: {v['flagged']}/{v['n']}" for k, v in trust["catch"].items()))
    print("reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(trust["reasons"].items(), key=lambda kv: -kv[1])))
    if trust["unflagged"]:
        u = trust["unflagged"]
        print(f"unflagged images: n {u['n']}, MAD {u['mad_mm']:.2f} mm, DSC {u['dice_pct']:.2f} %")
    if args.json:
        from hcmeasure.io.tables import write_json_atomic

        write_json_atomic(args.json, result)
        print(f"-> {args.json}")
    if args.write_calibration:
        from hcmeasure.io.tables import write_json_atomic

        measured = [r for r in rows if math.isfinite(r["hc_mm"])]
        cal = fit_trust_calibration(measured, source=f"{result['oof_csv']} ({len(measured)} out-of-fold images)")
        write_json_atomic(args.write_calibration, cal.to_json())
        print(f"calibration on all rows (q {cal.q:.3f}, {len(cal.rules)} rules) -> {args.write_calibration}")
    return 0


def variants(args) -> int:
    """The accuracy table of several out-of-fold CSVs side by side (one per variant tried),
    and each variant's paired change in absolute error against the first."""
    result = {"command": " ".join(["benchmarks/hc18_cv.py"] + sys.argv[1:]), "variants": {}}
    bands = ["all"] + [f"{lo}-{hi}" if hi < 1e8 else f">{lo}" for lo, hi in BANDS_MM]
    print(f"{'variant':<44} {'n':>4} {'MAD':>5} {'median':>6} {'MSD':>6} {'DSC %':>6} {'HD':>5}  "
          + " ".join(f"{b:>8}" for b in bands[1:]))
    first, changes = None, []
    for spec in args.csv:
        name, _, path = spec.rpartition("=")
        path = Path(path).resolve()
        rows = _load_oof(path)
        table = accuracy_table(rows)
        name = name or path.stem
        result["variants"][name] = {"csv": str(path.relative_to(REPO) if path.is_relative_to(REPO) else path), "folds": sorted({r["fold"] for r in rows}),
                                    "accuracy": table}
        if first is None:
            first = (name, rows)
        else:
            result["variants"][name]["change_vs_first"] = paired_change(first[1], rows)
            changes.append((name, result["variants"][name]["change_vs_first"]))
        a = table["all"]
        print(f"{name:<44} {a['n']:>4} {a['mad_mm']:>5.2f} {a['median_abs_mm']:>6.2f} {a['msd_mm']:>+6.2f} "
              f"{a['dice_pct']:>6.2f} {a['hd_mm']:>5.2f}  "
              + " ".join(f"{table[b]['mad_mm']:>8.2f}" if table[b]["n"] else f"{'-':>8}" for b in bands[1:]))
    print("(MAD by reference-HC band in the last columns, mm)")
    for name, c in changes:
        if c["se_mm"] is not None:
            print(f"{name} against {first[0]}: absolute error {c['mean_mm']:+.3f} ± {c['se_mm']:.3f} mm "
                  f"(mean change ± standard error, {c['n']} images in both)")
    if args.json:
        from hcmeasure.io.tables import write_json_atomic

        write_json_atomic(args.json, result)
        print(f"-> {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("predict", help="measure each fold's images with that fold's models")
    pp.add_argument("--folds", type=int, nargs="+", default=list(range(5)), choices=range(5))
    pp.add_argument("--output-root", type=Path, default=REPO / "output/cv5", help="where tools/train_cv.py trained")
    pp.add_argument("--model-dir", type=Path, default=None, help="measure with this published model instead")
    pp.add_argument("--out-dir", type=Path, default=REPO / "output/cv5/oof", help="per-fold CSVs go here")
    pp.add_argument("--limit", type=int, default=0, help="only the first N images of each fold (0 = all)")
    pp.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                    help="config overrides for the detector config, e.g. HCMEASURE.HEAD_REFINER.ROUNDS 2")
    pp.add_argument("--run-test-settings", action="store_true",
                    help="measure with the test settings each fold's run was trained with, not those of "
                         "configs/HC18/cv5/mask_rcnn_effnet_lite0_FPN.yaml now (TEST_KEYS)")
    pp.add_argument("--refiner-root", type=Path, action="append", default=[],
                    help="each fold's refiner from ROOT/f<k>/head_refiner (a variant) with the detector of "
                         "--output-root, or of --model-dir (out-of-fold only where that detector never "
                         "trained on the fold: the default's is fold 4); given more than once, the "
                         "roots' refiners of a fold are averaged as ensemble members (of one architecture)")
    pp.add_argument("--box", choices=("detector", "reference"), default="detector",
                    help="crop the refiner's input around the detector's box (default) or around the "
                         "reference ellipse's box: the refiner alone, with a detector of known error")
    pp.add_argument("--box-jitter", type=float, default=0.0,
                    help="with --box reference: move each box edge by up to this share of the box's size")
    pv = sub.add_parser("variants", help="accuracy of several out-of-fold CSVs side by side")
    pv.add_argument("csv", nargs="+", help="NAME=PATH (or PATH) of an out-of-fold CSV, one per variant")
    pv.add_argument("--json", type=Path, default=None, help="write the table here too")
    pc = sub.add_parser("collect", help="the per-fold CSVs into one")
    pc.add_argument("--out-dir", type=Path, default=REPO / "output/cv5/oof")
    pc.add_argument("--oof", type=Path, default=DEFAULT_OOF)
    pr = sub.add_parser("report", help="figures, interval and review flag from the out-of-fold CSV")
    pr.add_argument("--oof", type=Path, default=DEFAULT_OOF)
    pr.add_argument("--json", type=Path, default=None, help="write the figures here too")
    pr.add_argument("--write-calibration", type=Path, default=None,
                    help="fit the interval and the review rules on every row and write the JSON here")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "predict":
        return predict(args)
    if args.cmd == "collect":
        return collect(args)
    if args.cmd == "variants":
        return variants(args)
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
