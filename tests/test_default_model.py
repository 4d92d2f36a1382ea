"""The default model shipped with hcmeasure loads on CPU and measures real HC18 scans
from examinations it never trained on (hc18_val) close to their reference HC."""
import pytest

from hcmeasure.predictor import default_model_paths


@pytest.fixture(scope="module")
def predictor():
    paths = default_model_paths()
    if paths is None:
        pytest.skip("no default model installed in hcmeasure/model_zoo/hc18_default "
                    "(see tools/publish_model.py)")
    from hcmeasure.predictor import HeadPredictor

    return HeadPredictor(*paths, device="cpu")


def test_default_model_measures_val_scans_within_5_mm(predictor, hc18_root):
    from hcmeasure.data.hc18 import load_hc18_dicts
    from hcmeasure.io.images import read_scan
    from hcmeasure.measurement import head_circumference_mm

    val = load_hc18_dicts(hc18_root, "val")[:4]
    heads = predictor([read_scan(d["file_name"]) for d in val])
    for d, head in zip(val, heads):
        assert head.status == "ok", d["file_name"]
        hc = head_circumference_mm(head.ellipse, d["pixel_size_mm"])
        assert abs(hc - d["hc_mm"]) <= 5.0, (d["file_name"], hc, d["hc_mm"])


def test_default_model_config_needs_no_download(predictor):
    assert predictor.cfg.MODEL.WEIGHTS == ""
    assert predictor.cfg.MODEL.EFFICIENTNET_LITE.PRETRAINED == ""


def test_predictor_speedups_do_not_change_the_measurement(predictor, hc18_root):
    """HeadPredictor folds the backbone's BatchNorms into its convolutions and, on a CPU,
    keeps weights channels-last; the model as Detectron2 builds it measures the same ellipse."""
    import torch
    from detectron2.modeling import build_model

    from hcmeasure.data.hc18 import load_hc18_dicts
    from hcmeasure.io.images import read_scan
    from hcmeasure.predictor import load_weights_strict

    assert predictor.fused_batchnorms > 0
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in predictor.model.modules())
    assert predictor.model.backbone.bottom_up.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    unfused = build_model(predictor.cfg)
    load_weights_strict(unfused, predictor.weights, predictor.config_file)
    unfused.eval()
    unfused.paste_masks = False
    d = load_hc18_dicts(hc18_root, "val")[0]
    x = predictor.preprocess(read_scan(d["file_name"]))
    with torch.inference_mode():
        ours = predictor.measure([x])[0].ellipse
        theirs = unfused([x])[0]["head"].ellipse
    for field in ("cx", "cy", "a", "b"):
        assert getattr(ours, field) == pytest.approx(getattr(theirs, field), abs=0.02), field
    assert ours.angle == pytest.approx(theirs.angle, abs=1e-3)
