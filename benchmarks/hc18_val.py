#!/usr/bin/env python
"""Accuracy on hc18_val (examinations never trained on), measured as a user would:
``hcmeasure predict`` on the val images, then ``hcmeasure evaluate`` against the CSV
and the annotations.

    .venv/bin/python benchmarks/hc18_val.py [--model CKPT --config CFG] [--flip-tta | --no-flip-tta] [--tag NAME]

Writes ``benchmarks/results/hc18_val_<tag>.json`` (metrics, command, timing) and prints
the evaluate table. Without --model it uses the default model shipped with hcmeasure.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path)
    p.add_argument("--config", type=Path)
    p.add_argument("--flip-tta", dest="flip_tta", action="store_true", default=None,
                   help="force flip averaging on (default: as in the model's config)")
    p.add_argument("--no-flip-tta", dest="flip_tta", action="store_false")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--tag", default="default")
    p.add_argument("--limit", type=int, default=0, help="only the first N val images (0 = all)")
    args = p.parse_args(argv)

    from hcmeasure.data.hc18 import TRAIN_CSV, TRAIN_DIR, load_hc18_dicts, resolve_root

    root = resolve_root()
    dicts = load_hc18_dicts(root, "val")
    if args.limit:
        dicts = dicts[: args.limit]
    exe = [sys.executable, "-m", "hcmeasure.cli.main"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = tmp / "val_images"
        images.mkdir()
        for d in dicts:
            os.symlink(d["file_name"], images / Path(d["file_name"]).name)
        out = tmp / "pred"
        cmd = exe + ["predict", str(images), "--out", str(out), "--pixel-size-csv", str(root / TRAIN_CSV),
                     "--no-overlays"]
        if args.batch_size:
            cmd += ["--batch-size", str(args.batch_size)]
        if args.model:
            cmd += ["--model", str(args.model)]
        if args.config:
            cmd += ["--config", str(args.config)]
        if args.flip_tta is not None:
            cmd += ["--flip-tta"] if args.flip_tta else ["--no-flip-tta"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        predict_s = time.perf_counter() - t0
        metrics_json = tmp / "metrics.json"
        subprocess.run(exe + ["evaluate", "--pred", str(out / "measurements.csv"), "--truth", str(root / TRAIN_CSV),
                              "--annotations", str(root / TRAIN_DIR), "--json", str(metrics_json)], check=True)
        metrics = json.loads(metrics_json.read_text())
    result = {
        "tag": args.tag,
        "command": " ".join([Path(sys.executable).name, "benchmarks/hc18_val.py"] + (argv or sys.argv[1:])),
        "n_images": len(dicts),
        "predict_wall_s": round(predict_s, 1),
        "seconds_per_image": round(predict_s / len(dicts), 3),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s)",
        "metrics": metrics.get("summary", metrics),
        "failed": metrics.get("failed", []),
    }
    dest = REPO / "benchmarks" / "results" / f"hc18_val_{args.tag}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
