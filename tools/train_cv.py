#!/usr/bin/env python
"""Train the cross-validation ensemble: a detector and a head refiner per fold.

    python tools/train_cv.py                          # every fold, detector and refiner
    python tools/train_cv.py --folds 0 1 --models refiner
    python tools/train_cv.py --dry-run                # print the commands only

Fold k's models train on ``hc18_cv5_f{k}_train`` (the four other folds) and write to
``OUTPUT_ROOT/f{k}/{detector,head_refiner}/``. Each run is ``tools/train_net.py --resume``,
so running this again continues every unfinished run from its last checkpoint and skips
the finished ones (those with ``model_final.pth``). Options after ``--`` go to every
``train_net.py`` call (e.g. ``-- SOLVER.MAX_ITER 20`` for a smoke run).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {
    "detector": REPO / "configs/HC18/cv5/mask_rcnn_effnet_lite0_FPN.yaml",
    "refiner": REPO / "configs/HC18/cv5/head_refiner_unet_effnet_lite0.yaml",
}
RUN_NAMES = {"detector": "detector", "refiner": "head_refiner"}
NUM_FOLDS = 5


def fold_run_dir(output_root: Path, fold: int, model: str) -> Path:
    """``OUTPUT_ROOT/f{fold}/{detector|head_refiner}``."""
    return Path(output_root) / f"f{fold}" / RUN_NAMES[model]


def train_command(fold: int, model: str, output_root: Path, extra_opts=()) -> list[str]:
    """The ``train_net.py`` call that trains (or resumes) one fold's model."""
    return [
        sys.executable,
        str(REPO / "tools/train_net.py"),
        "--config-file", str(CONFIGS[model]),
        "--resume",
        "DATASETS.TRAIN", f"('hc18_cv{NUM_FOLDS}_f{fold}_train',)",
        "DATASETS.TEST", "()",
        "OUTPUT_DIR", str(fold_run_dir(output_root, fold, model)),
        *extra_opts,
    ]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folds", type=int, nargs="+", default=list(range(NUM_FOLDS)),
                   choices=range(NUM_FOLDS), help="folds to train (default: all five)")
    p.add_argument("--models", nargs="+", default=["refiner", "detector"], choices=sorted(CONFIGS),
                   help="which models of each fold (default: refiner, then detector)")
    p.add_argument("--output-root", type=Path, default=REPO / "output/cv5",
                   help="runs go to OUTPUT_ROOT/f<k>/<model> (default: output/cv5)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="after --: options for every train_net.py")
    args = p.parse_args(argv)
    if args.opts and args.opts[0] == "--":
        args.opts = args.opts[1:]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    for fold in args.folds:
        for model in args.models:
            run_dir = fold_run_dir(args.output_root, fold, model)
            if (run_dir / "model_final.pth").is_file():
                print(f"fold {fold} {model}: finished ({run_dir / 'model_final.pth'})", flush=True)
                continue
            cmd = train_command(fold, model, args.output_root, args.opts)
            print(f"fold {fold} {model}: {' '.join(cmd)}", flush=True)
            if args.dry_run:
                continue
            start = time.time()
            rc = subprocess.call(cmd, cwd=REPO)
            minutes = (time.time() - start) / 60
            if rc != 0:
                print(f"fold {fold} {model}: train_net.py exited with {rc} after {minutes:.1f} min; "
                      f"rerun this command to resume from {run_dir}", flush=True)
                return rc
            print(f"fold {fold} {model}: done in {minutes:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
