#!/usr/bin/env python
"""Install a trained HC18 checkpoint as hcmeasure's default model.

    python tools/publish_model.py output/hc18_effnet_lite0/model_final.pth \
        --config output/hc18_effnet_lite0/config.yaml [--half]

Writes ``hcmeasure/model_zoo/hc18_default/model_final.pth`` (model weights only: the
optimizer and scheduler state are dropped) and ``config.yaml`` beside it (with
MODEL.WEIGHTS and the backbone's ImageNet initialisation cleared, since the
checkpoint holds every weight). ``--half`` stores float tensors in float16 (they are
loaded back as float32); check accuracy with benchmarks/hc18_val.py before using it.
"""
import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hcmeasure.io.tables import atomic_write_bytes  # noqa: E402
from hcmeasure.predictor import DEFAULT_MODEL_DIR, load_config  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--half", action="store_true", help="store float weights as float16")
    args = p.parse_args(argv)
    cfg = load_config(args.config, device="cpu")
    cfg.MODEL.DEVICE = "cuda"  # Detectron2's default; predict falls back to CPU without CUDA
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    state = ckpt.get("model", ckpt)
    if args.half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()
    torch.save({"model": state, "__author__": "hcmeasure", "iteration": ckpt.get("iteration")}, buf)
    atomic_write_bytes(args.out_dir / "model_final.pth", buf.getvalue())
    atomic_write_bytes(args.out_dir / "config.yaml", cfg.dump().encode())
    size = (args.out_dir / "model_final.pth").stat().st_size / 2**20
    print(f"wrote {args.out_dir / 'model_final.pth'} ({size:.1f} MiB) and config.yaml")


if __name__ == "__main__":
    main()
