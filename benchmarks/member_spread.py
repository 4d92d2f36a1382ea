#!/usr/bin/env python
"""How much a refiner ensemble's members disagree on scans none of them trained on.

    .venv/bin/python benchmarks/member_spread.py [--model-dir hcmeasure/model_zoo/hc18_default]
        [--images ../shared/data/hc18/test_set] [--json benchmarks/results/member_spread_hc18_test.json]

Measures every scan of ``--images`` (default: the HC18 test images in ``../shared``,
which no fold saw and which carry no reference HC) with the ensemble and reports the
distribution of ``member_spread`` (relative SD of the head size over the members,
``hcmeasure.measurement.trust``). Out-of-fold rows come from one model each, so this is
where the review rule on member disagreement (``MEMBER_SPREAD_LIMIT``) is set: above
the spread that unseen scans show, no reference needed.

    .venv/bin/python benchmarks/member_spread.py --oof OOF.csv [--json ...]

reads instead an out-of-fold CSV whose rows had two or more members that never trained
on the image (``benchmarks/hc18_cv.py predict`` with ``--refiner-root`` given more than
once) and reports, besides the distribution, how well the spread finds the large errors:
how many errors over 5 and 10 mm the limit catches, and the spread's AUC for errors over
5 mm.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, default=REPO / "hcmeasure" / "model_zoo" / "hc18_default",
                   help="a published ensemble (config.yaml with HCMEASURE.HEAD_REFINER.MEMBER_WEIGHTS)")
    p.add_argument("--images", type=Path, default=REPO.parent / "shared" / "data" / "hc18" / "test_set")
    p.add_argument("--limit", type=int, default=0, help="only the first N images (0 = all)")
    p.add_argument("--json", type=Path, help="write the figures and every image's spread here")
    p.add_argument("--oof", type=Path, default=None,
                   help="report on this out-of-fold CSV's member_spread and diff_mm columns instead of measuring")
    args = p.parse_args(argv)
    if args.oof:
        return report_oof(args, argv)

    from hcmeasure.io.images import read_scan
    from hcmeasure.measurement.trust import trust_features
    from hcmeasure.predictor import HeadPredictor, torch_threads_from_env

    torch_threads_from_env()
    predictor = HeadPredictor(args.model_dir / "config.yaml", args.model_dir / "model_final.pth", device="cpu")
    members = len(predictor.refiner_weights or [])
    if members < 2:
        raise SystemExit(f"{args.model_dir}/config.yaml names {members} refiner member(s); an ensemble has 2 or more")
    files = sorted(f for f in args.images.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if args.limit:
        files = files[: args.limit]
    if not files:
        raise SystemExit(f"{args.images}: no .png or .jpg scans")
    per_image = {}
    for f in files:
        head = predictor([read_scan(f)])[0]
        if head.ellipse is not None and head.status == "ok":
            per_image[f.name] = trust_features(head, None)["member_spread"]
    if not per_image:
        raise SystemExit(f"{args.images}: none of the {len(files)} scans was measured (status ok); no spread to report")
    spreads = np.array(list(per_image.values()))
    model_dir = args.model_dir.resolve()
    result = {
        "command": _command(argv),
        "model_dir": str(model_dir.relative_to(REPO) if model_dir.is_relative_to(REPO) else model_dir),
        "members": members, "images": len(files), "measured": len(spreads),
        **spread_figures(spreads),
        "per_image_pct": {k: round(100 * v, 4) for k, v in per_image.items()},
    }
    print(f"{members} members, {len(spreads)} of {len(files)} scans measured: {_describe(result)}")
    _write(args, result)
    return 0


def _command(argv) -> str:
    return " ".join(["benchmarks/member_spread.py"] + (argv if argv is not None else sys.argv[1:]))


def spread_figures(spreads: np.ndarray) -> dict:
    """Median, 90th percentile and largest relative spread in %, the review limit in %, and
    how many spreads lie above it."""
    from hcmeasure.measurement.trust import MEMBER_SPREAD_LIMIT

    return {"median_pct": 100 * float(np.median(spreads)), "p90_pct": 100 * float(np.percentile(spreads, 90)),
            "max_pct": 100 * float(spreads.max()), "limit_pct": 100 * MEMBER_SPREAD_LIMIT,
            "above_limit": int((spreads > MEMBER_SPREAD_LIMIT).sum())}


def _describe(result: dict) -> str:
    return (f"member spread median {result['median_pct']:.2f} %, 90th percentile {result['p90_pct']:.2f} %, "
            f"largest {result['max_pct']:.2f} %; {result['above_limit']} above the review limit {result['limit_pct']:g} %")


def _write(args, result: dict) -> None:
    if args.json:
        from hcmeasure.io.tables import write_json_atomic

        write_json_atomic(args.json, result)
        print(f"-> {args.json}")


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive row scores above a negative one (ties count half);
    NaN without both kinds of rows."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    above = (pos[:, None] > neg[None, :]).mean()
    tied = (pos[:, None] == neg[None, :]).mean()
    return float(above + 0.5 * tied)


def report_oof(args, argv) -> int:
    import csv

    from hcmeasure.measurement.trust import MEMBER_SPREAD_LIMIT

    with open(args.oof, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("diff_mm") and r.get("member_spread")]
    if not rows:
        raise SystemExit(f"{args.oof}: no rows with both member_spread and diff_mm (measured rows of hc18_cv.py predict)")
    spreads = np.array([float(r["member_spread"]) for r in rows])
    errors_mm = np.abs([float(r["diff_mm"]) for r in rows])
    if not spreads.any():
        raise SystemExit(f"{args.oof}: member_spread is 0 on every row: one model per image; measure with "
                         "hc18_cv.py predict --refiner-root A --refiner-root B")
    flagged = spreads > MEMBER_SPREAD_LIMIT
    result = {
        "command": _command(argv), "oof": str(args.oof), "measured": len(rows),
        **spread_figures(spreads),
        "errors_over_5mm": int((errors_mm > 5).sum()), "caught_over_5mm": int((flagged & (errors_mm > 5)).sum()),
        "errors_over_10mm": int((errors_mm > 10).sum()), "caught_over_10mm": int((flagged & (errors_mm > 10)).sum()),
        "auc_over_5mm": auc(spreads, errors_mm > 5),
    }
    print(f"{len(rows)} out-of-fold rows: {_describe(result)}, catching {result['caught_over_5mm']} of "
          f"{result['errors_over_5mm']} errors > 5 mm and {result['caught_over_10mm']} of {result['errors_over_10mm']} > 10 mm; "
          f"AUC for errors > 5 mm {result['auc_over_5mm']:.2f}")
    _write(args, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
