"""Export a trained semantic-segmentation model to ONNX.

The exported graph is the whole inference path of a :class:`SemanticSegmentor`, so a
runtime without Python (onnxruntime, onnxruntime-web in ``web/``) needs nothing else:

* input ``image``: float32 (1, C, H, W), pixel values 0-255 in the config's
  ``INPUT.FORMAT`` channel order (RGB for the cell and polyp configs), any H and W;
* normalisation with ``MODEL.PIXEL_MEAN``/``PIXEL_STD``, zero padding of the bottom and
  right to a multiple of the model's ``size_divisibility`` (as Detectron2's ImageList),
  the network, cropping back to H x W and a softmax;
* output ``scores``: float32 (1, K, H, W) class probabilities (the ``sem_seg`` scores of
  the PyTorch model for an input without test resize). Its arg-max over K is the mask.

The config's test resize and tiling are not part of the graph: the caller feeds the image
at the resolution it wants predicted (and tiles it itself for very large images).
Exported with PyTorch's TorchScript-based exporter (no ``onnxscript`` needed), opset 17,
which onnxruntime-web's WebAssembly backend runs.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["SemanticOnnxWrapper", "export_semantic_onnx", "run_onnx", "OPSET"]

OPSET = 17


class SemanticOnnxWrapper(nn.Module):
    """(1, C, H, W) 0-255 image -> (1, K, H, W) class probabilities of a SemanticSegmentor."""

    def __init__(self, model):
        super().__init__()
        if not hasattr(model, "net") or not hasattr(model, "pixel_mean"):
            raise TypeError(f"{type(model).__name__} is not a hcmeasure SemanticSegmentor (net, pixel_mean, "
                            "pixel_std, size_divisibility); only those can be exported")
        self.net = model.net
        self.register_buffer("pixel_mean", model.pixel_mean.detach().clone(), False)
        self.register_buffer("pixel_std", model.pixel_std.detach().clone(), False)
        self.divisor = int(model.size_divisibility or 1)

    def forward(self, image):
        h, w = image.shape[-2], image.shape[-1]
        x = (image - self.pixel_mean) / self.pixel_std
        d = self.divisor
        pad_h = (d - h % d) % d
        pad_w = (d - w % d) % d
        x = F.pad(x, [0, pad_w, 0, pad_h])
        logits = self.net(x)
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits[:, :, :h, :w].softmax(dim=1)


def export_semantic_onnx(model, path, *, height: int = 256, width: int = 256, opset: int = OPSET) -> Path:
    """Write ``model`` (eval mode is set) to ``path``; H and W stay dynamic. The example
    input of ``height`` x ``width`` only drives the trace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    wrapper = SemanticOnnxWrapper(model).eval().cpu()
    channels = int(wrapper.pixel_mean.numel())
    example = torch.rand(1, channels, height, width) * 255
    with torch.no_grad(), warnings.catch_warnings():
        # The graph's shape checks (the decoder's and the one above) come out the same for
        # every input once it is padded to size_divisibility, so the branch the trace
        # records holds for any H and W (tests check parity at odd sizes); and the
        # TorchScript exporter is chosen on purpose (see the module docstring).
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"hcmeasure\.")
        warnings.filterwarnings("ignore", message=r"You are using the legacy TorchScript-based ONNX export",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"The feature will be removed", category=DeprecationWarning,
                                module=r"torch\.onnx")
        torch.onnx.export(wrapper, (example,), str(path), input_names=["image"], output_names=["scores"],
                          dynamic_axes={"image": {2: "height", 3: "width"}, "scores": {2: "height", 3: "width"}},
                          opset_version=opset, dynamo=False, do_constant_folding=True)
    import onnx

    onnx.checker.check_model(onnx.load(str(path)))
    return path


def run_onnx(path, image) -> "np.ndarray":  # noqa: F821
    """Scores (1, K, H, W) of the ONNX model for a (C, H, W) or (1, C, H, W) 0-255 array."""
    import numpy as np
    import onnxruntime as ort

    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session.run(["scores"], {"image": x})[0]
