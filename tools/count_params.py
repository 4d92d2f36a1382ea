#!/usr/bin/env python
"""Trainable parameters and FLOPs of the models of any hcmeasure / Detectron2 configs.

    python tools/count_params.py configs/VOC2012/fcn_R_50.yaml configs/VOC2012/ednet_R_50.yaml
    python tools/count_params.py configs/VOC2012/*.yaml --size 512 512 --markdown
    python tools/count_params.py CFG --opts MODEL.EDNET.DECODER_CHANNELS 128

Each model is built on the CPU by ``hcmeasure.modeling.loading.load_model`` without
weights (random initialisation: the configs' ``MODEL.WEIGHTS`` and ImageNet
initialisations are not loaded, they do not change the counts) and run once
in inference mode on one random image of ``--size`` (default 380x380) through
Detectron2's ``FlopCountAnalysis`` (fvcore), which takes the usual list-of-dicts input.
FLOPs follow fvcore's convention: one multiply-add counts as one flop (so they are
multiply-accumulates); operators fvcore has no formula for (e.g. softmax, sigmoid) are
counted as 0 and listed with ``--verbose``. The input is padded as the model pads it
(e.g. to a multiple of 32), so the FLOPs are those of the padded image.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

import torch

from detectron2.utils.analysis import FlopCountAnalysis

import hcmeasure  # noqa: F401  (registers meta-architectures, backbones, datasets)
from hcmeasure.modeling.loading import load_model


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def count_flops(model: torch.nn.Module, cfg, height: int, width: int):
    """(flops, unsupported operator counts) of one inference on a random image."""
    channels = len(cfg.MODEL.PIXEL_MEAN)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(channels, height, width, generator=g) * 255.0
    inputs = [{"image": image, "height": height, "width": width}]
    model.eval()
    with torch.no_grad():
        analysis = FlopCountAnalysis(model, inputs)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        total = analysis.total()
        unsupported = dict(analysis.unsupported_ops())
    return int(total), unsupported


def measure(path: str, opts=(), size=(380, 380)) -> dict:
    torch.manual_seed(0)
    # No weights: counting needs none (they do not change the counts), so nothing is downloaded.
    cfg, model = load_model(path, None, "cpu", opts)
    trainable, total = count_parameters(model)
    flops, unsupported = count_flops(model, cfg, *size)
    return {
        "config": path,
        "meta_architecture": cfg.MODEL.META_ARCHITECTURE,
        "trainable_params": trainable,
        "total_params": total,
        "input_size": list(size),
        "flops": flops,
        "unsupported_ops": unsupported,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("configs", nargs="+", help="config files")
    parser.add_argument("--size", nargs=2, type=int, default=(380, 380), metavar=("H", "W"),
                        help="input height and width (default 380 380)")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="KEY VALUE pairs merged into every config (last argument)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", action="store_true", help="print one JSON object per config")
    parser.add_argument("--verbose", action="store_true", help="list operators counted as 0 flops")
    args = parser.parse_args(argv)
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    logging.getLogger("detectron2").setLevel(logging.WARNING)

    h, w = args.size
    rows = [measure(path, args.opts, (h, w)) for path in args.configs]
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    if args.markdown:
        print(f"| config | trainable params (M) | GFLOPs @ {h}x{w} |")
        print("|---|---:|---:|")
        for r in rows:
            print(f"| {r['config']} | {r['trainable_params'] / 1e6:.2f} | {r['flops'] / 1e9:.2f} |")
    else:
        width = max(len(r["config"]) for r in rows)
        print(f"{'config':<{width}}  {'trainable':>12}  {'total':>12}  {'GFLOPs@' + f'{h}x{w}':>14}")
        for r in rows:
            print(f"{r['config']:<{width}}  {r['trainable_params']:>12,}  {r['total_params']:>12,}  "
                  f"{r['flops'] / 1e9:>14.2f}")
    if args.verbose:
        for r in rows:
            print(f"{r['config']}: counted as 0 flops: {r['unsupported_ops'] or 'none'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
