#!/usr/bin/env python
"""Install a trained HC18 checkpoint as hcmeasure's default model.

    python tools/publish_model.py output/hc18_effnet_lite0/model_final.pth \
        --config output/hc18_effnet_lite0/config.yaml [--half] \
        [--refiner output/hc18_head_refiner_effnet_lite0/model_final.pth \
         --refiner-config output/hc18_head_refiner_effnet_lite0/config.yaml] [--trust trust.json]
    # the cross-validation ensemble: one refiner per fold
    python tools/publish_model.py DETECTOR.pth --config DETECTOR.yaml --half \
        --refiner output/cv5/f{0,1,2,3,4}/head_refiner/model_final.pth \
        --refiner-config output/cv5/f0/head_refiner/config.yaml --trust trust.json \
        [--opts INPUT.MIN_SIZE_TEST 256 INPUT.MAX_SIZE_TEST 512]

Writes ``hcmeasure/model_zoo/hc18_default/model_final.pth`` (model weights only: the
optimizer and scheduler state are dropped) and ``config.yaml`` beside it (with
MODEL.WEIGHTS and the backbone's ImageNet initialisation cleared, since the
checkpoint holds every weight). ``--half`` stores float tensors in float16 (they are
loaded back as float32); check accuracy with benchmarks/hc18_val.py before using it.
``--refiner`` adds a head-contour refiner (hcmeasure.modeling.head_refiner) the same
way, as ``head_refiner.pth`` + ``head_refiner.yaml``, and names them in ``config.yaml``
(``HCMEASURE.HEAD_REFINER``, paths relative to it). Several ``--refiner`` checkpoints (of
one config) make an ensemble: ``head_refiner_m0.pth``, ``head_refiner_m1.pth``, ... named
in ``HCMEASURE.HEAD_REFINER.MEMBER_WEIGHTS``; ``config_single.yaml`` beside it uses the
first member alone (faster; its interval is the same calibration). ``--opts KEY VALUE ...`` overrides config keys in the published config (test settings).
``--trust`` ships a trust calibration
(``benchmarks/hc18_cv.py report --write-calibration``) as ``trust.json``
(``HCMEASURE.TRUST.CALIBRATION``).
"""
import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hcmeasure.io.tables import atomic_write_bytes  # noqa: E402
from hcmeasure.modeling.checkpoint import save_model_weights  # noqa: E402
from hcmeasure.predictor import DEFAULT_MODEL_DIR, load_config  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--half", action="store_true", help="store float weights as float16")
    p.add_argument("--refiner", type=Path, nargs="+",
                   help="head-refiner checkpoint to ship with the detector (several: an ensemble)")
    p.add_argument("--refiner-config", type=Path, help="the head refiner's training config")
    p.add_argument("--trust", type=Path, help="trust calibration JSON to ship as trust.json")
    p.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                   help="config overrides written into the published config.yaml, e.g. the "
                        "test settings INPUT.MIN_SIZE_TEST 256 (KEY VALUE pairs, as train_net.py takes)")
    args = p.parse_args(argv)
    if (args.refiner is None) != (args.refiner_config is None):
        p.error("--refiner and --refiner-config go together")
    if len(args.opts) % 2:
        p.error(f"--opts takes KEY VALUE pairs; got {len(args.opts)} items")
    cfg = load_config(args.config, opts=args.opts, device="cpu")
    cfg.MODEL.DEVICE = "cuda"  # Detectron2's default; predict falls back to CPU without CUDA
    cfg.HCMEASURE.HEAD_REFINER.CONFIG = cfg.HCMEASURE.HEAD_REFINER.WEIGHTS = ""
    cfg.HCMEASURE.HEAD_REFINER.MEMBER_WEIGHTS = []
    cfg.HCMEASURE.TRUST.CALIBRATION = ""
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for old in [*args.out_dir.glob("head_refiner*.pth"), args.out_dir / "head_refiner.yaml", args.out_dir / "trust.json"]:
        old.unlink(missing_ok=True)
    if args.refiner is not None:
        rcfg = load_config(args.refiner_config, device="cpu")
        rcfg.MODEL.DEVICE = "cuda"
        names = ["head_refiner.pth"] if len(args.refiner) == 1 else [
            f"head_refiner_m{i}.pth" for i in range(len(args.refiner))]
        for checkpoint, name in zip(args.refiner, names):
            write_weights(checkpoint, args.out_dir / name, args.half)
        atomic_write_bytes(args.out_dir / "head_refiner.yaml", rcfg.dump().encode())
        cfg.HCMEASURE.HEAD_REFINER.CONFIG = "head_refiner.yaml"
        if len(names) == 1:
            cfg.HCMEASURE.HEAD_REFINER.WEIGHTS = names[0]
        else:
            cfg.HCMEASURE.HEAD_REFINER.MEMBER_WEIGHTS = names
    if args.trust is not None:
        from hcmeasure.measurement.trust import load_trust_calibration

        load_trust_calibration(args.trust)  # refuse a malformed file before shipping it
        atomic_write_bytes(args.out_dir / "trust.json", args.trust.read_bytes())
        cfg.HCMEASURE.TRUST.CALIBRATION = "trust.json"
    write_weights(args.checkpoint, args.out_dir / "model_final.pth", args.half)
    atomic_write_bytes(args.out_dir / "config.yaml", cfg.dump().encode())
    single = args.out_dir / "config_single.yaml"
    single.unlink(missing_ok=True)
    if cfg.HCMEASURE.HEAD_REFINER.MEMBER_WEIGHTS:
        # The same detector with the ensemble's first member only: for speed over agreement.
        cfg.HCMEASURE.HEAD_REFINER.WEIGHTS = cfg.HCMEASURE.HEAD_REFINER.MEMBER_WEIGHTS[0]
        cfg.HCMEASURE.HEAD_REFINER.MEMBER_WEIGHTS = []
        atomic_write_bytes(single, cfg.dump().encode())


def write_weights(checkpoint: Path, dest: Path, half: bool) -> None:
    """Model weights only (no optimizer or scheduler state), float16 when ``half``."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = ckpt.get("model", ckpt)
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_model_weights(state, dest, iteration=ckpt.get("iteration"))
    print(f"wrote {dest} ({dest.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
