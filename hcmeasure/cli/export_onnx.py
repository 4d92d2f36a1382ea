"""``hcmeasure export-onnx --model CKPT [--config CFG] --out model.onnx``: a trained
semantic-segmentation model as one ONNX file (normalisation, padding, network, softmax;
see :mod:`hcmeasure.export.onnx`), for onnxruntime and the browser page in ``web/``.

With ``--check IMAGE`` the exported file is run with onnxruntime on that image and
compared with the PyTorch model (maximum absolute difference of the class scores).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .common import CLIError

__all__ = ["add_arguments", "run"]


def add_arguments(p):
    p.add_argument("--model", type=Path, required=True, help="checkpoint .pth written by tools/train_net.py")
    p.add_argument("--config", type=Path, default=None,
                   help="config the checkpoint was trained with (default: config.yaml beside --model)")
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--height", type=int, default=256, help="height of the tracing example (H stays dynamic)")
    p.add_argument("--width", type=int, default=256, help="width of the tracing example (W stays dynamic)")
    p.add_argument("--check", type=Path, default=None, metavar="IMAGE",
                   help="compare onnxruntime with PyTorch on this image after the export")


def run(args) -> int:
    import torch

    from ..export.onnx import export_semantic_onnx, run_onnx
    from ..modeling.loading import ModelLoadError, load_model
    from .predict import resolve_model

    config, weights = resolve_model(args.model, args.config)
    try:
        # The whole image in one graph: no tiling inside the exported model.
        cfg, model = load_model(config, weights, "cpu", ["HCMEASURE.TILE.TEST_SIZE", 0])
    except ModelLoadError as exc:
        raise CLIError(str(exc)) from exc
    try:
        path = export_semantic_onnx(model, args.out, height=args.height, width=args.width)
    except TypeError as exc:
        raise CLIError(f"{config}: {exc}") from exc
    info = {"onnx": str(path), "input": "image (1, C, H, W) float32 0-255, " + cfg.INPUT.FORMAT,
            "output": "scores (1, K, H, W) probabilities", "num_classes": int(cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES)}
    if args.check is not None:
        from detectron2.data import detection_utils as utils

        image = utils.read_image(str(args.check), format=cfg.INPUT.FORMAT).transpose(2, 0, 1).astype(np.float32)
        with torch.no_grad():
            ref = model([{"image": torch.as_tensor(image)}])[0]["sem_seg"].numpy()
        got = run_onnx(path, image)[0]
        info["max_abs_diff"] = float(np.abs(got - ref).max())
    print(json.dumps(info))
    return 0
