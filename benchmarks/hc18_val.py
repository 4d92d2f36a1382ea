#!/usr/bin/env python
"""Accuracy on hc18_val (examinations never trained on), measured as a user would:
``hcmeasure predict`` on the val images, then ``hcmeasure evaluate`` against the CSV
and the annotations.

    .venv/bin/python benchmarks/hc18_val.py [--model CKPT --config CFG] [--flip-tta | --no-flip-tta] [--tag NAME]
        [--refiner CKPT --refiner-config CFG]

``--refiner`` swaps in another head refiner checkpoint (a ``tools/train_net.py`` run of a
head refiner config, float32) for the detector's: predict gets a detector config that
names it. Writes ``benchmarks/results/hc18_val_<tag>.json`` (metrics, command, timing) and prints
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
    p.add_argument("--refiner", type=Path, help="head refiner checkpoint to use instead of the model's")
    p.add_argument("--refiner-config", type=Path, help="the config the --refiner checkpoint was trained with")
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
        config = args.config
        if args.refiner or args.refiner_config:
            config = with_refiner(tmp, args.config, args.refiner, args.refiner_config)
        if config:
            cmd += ["--config", str(config)]
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
    from hcmeasure.io.tables import write_json_atomic

    write_json_atomic(dest, result, indent=2)
    print(f"wrote {dest}")


def with_refiner(tmp: Path, detector_config: Path | None, refiner: Path | None, refiner_config: Path | None) -> Path:
    """A detector config (``detector_config``, or the default model's) whose head refiner is
    ``refiner`` trained with ``refiner_config``; written under ``tmp``."""
    from hcmeasure.predictor import DEFAULT_MODEL_DIR

    if refiner is None or refiner_config is None:
        raise SystemExit("--refiner and --refiner-config go together: the checkpoint and the config it was trained with")
    for path in (refiner, refiner_config):
        if not path.is_file():
            raise SystemExit(f"{path}: not found")
    base = (detector_config or DEFAULT_MODEL_DIR / "config.yaml").resolve()
    dest = tmp / "detector_with_refiner.yaml"
    dest.write_text(f'_BASE_: "{base}"\nHCMEASURE:\n  HEAD_REFINER:\n'
                    f'    CONFIG: "{refiner_config.resolve()}"\n    WEIGHTS: "{refiner.resolve()}"\n')
    return dest


if __name__ == "__main__":
    main()
