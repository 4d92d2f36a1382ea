"""``hcmeasure doctor``: what is installed and what is found."""
from __future__ import annotations

import importlib.metadata as md
import platform
import sys
from pathlib import Path


def add_arguments(p):
    pass


def detectron2_route() -> tuple[str, str, bool]:
    """(version, install route, whether the compiled _C extension loads)."""
    try:
        import detectron2
    except ImportError:
        return "not installed", "run 'make install' (tools/install_detectron2.py)", False
    try:
        dist_version = md.version("detectron2")
    except md.PackageNotFoundError:
        dist_version = getattr(detectron2, "__version__", "?")
    if "+sal" in dist_version:
        route = "hcmeasure repack of sal-detectron2 0.7.2 (tools/install_detectron2.py)"
    else:
        route = f"upstream/source build ({Path(detectron2.__file__).parent})"
    try:
        from detectron2 import _C  # noqa: F401

        has_c = True
    except ImportError:
        has_c = False
    return dist_version, route, has_c


def run(args) -> int:
    import torch
    import torchvision

    from ..data.hc18 import default_root
    from ..modeling.backbone.efficientnet_lite import pretrained_weights_path
    from ..predictor import DEFAULT_MODEL_DIR, default_model_paths

    d2_version, route, has_c = detectron2_route()
    lines = [
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("torch", torch.__version__),
        ("torchvision", torchvision.__version__),
        ("detectron2", d2_version),
        ("detectron2 route", route),
        ("detectron2 _C", "present" if has_c else "absent (pure Python; hcmeasure does not need it)"),
        ("CUDA", f"available, {torch.cuda.device_count()} device(s)" if torch.cuda.is_available() else "not available (CPU)"),
    ]
    from ..modeling.precision import cpu_has_native_bf16

    lines.append(("CPU inference precision", "bfloat16 where the config asks (native AVX512-BF16/AMX)"
                  if cpu_has_native_bf16() else "float32 (this CPU has no native bfloat16)"))
    try:
        ops_ok = torch.ops.torchvision.roi_align is not None
        lines.append(("torchvision ops", "roi_align/nms load" if ops_ok else "missing"))
    except Exception as exc:  # the CPU-only torch wheel cannot load them
        lines.append(("torchvision ops", f"NOT loadable ({exc}); install PyPI's default torch wheel"))
    root = default_root()
    if (root / "training_set").is_dir():
        lines.append(("HC18 data", f"found at {root}"))
    else:
        lines.append(("HC18 data", "not found; set HCMEASURE_HC18_ROOT to the folder with training_set/"))
    try:
        lines.append(("EfficientNet-Lite0 weights", pretrained_weights_path("efficientnet-lite0")))
    except FileNotFoundError as exc:
        lines.append(("EfficientNet-Lite0 weights", f"not found ({exc})"))
    try:
        lines.append(("highdicom (--dicom-sr)", md.version("highdicom")))
    except md.PackageNotFoundError:
        lines.append(("highdicom (--dicom-sr)", "not installed; pip install 'highdicom>=0.28,<0.29'"))
    import shutil

    lines.append(("dciodvfy (SR checks)", shutil.which("dciodvfy") or "not found (make dicom-deps, or apt-get "
                                                                        "install dicom3tools); its test is skipped"))
    default = default_model_paths()
    lines.append(("default HC model", str(default[1]) if default else f"not installed (expected in {DEFAULT_MODEL_DIR})"))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    return 0
