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


def test_default_model_refines_the_head_on_a_crop(predictor):
    """The default measurement comes from the head refiner shipped beside the detector."""
    assert predictor.refiner is not None
    assert predictor.refiner_config.parent == predictor.config_file.parent
    assert [w.name for w in predictor.refiner_weights] == ["head_refiner.pth"]
    assert predictor.refiner.rounds == 1 and not predictor.refiner.flip_tta


def test_predictor_speedups_do_not_change_the_measurement(predictor, hc18_root):
    """HeadPredictor folds the BatchNorms of the detector's EfficientNet-Lite and of the
    refiner's into their convolutions and, on a CPU, keeps weights channels-last; the models
    as Detectron2 builds them measure the same ellipse."""
    import torch
    from detectron2.modeling import build_model

    from hcmeasure.data.hc18 import load_hc18_dicts
    from hcmeasure.io.images import read_scan
    from hcmeasure.modeling.head_refiner import HeadContourRefiner
    from hcmeasure.predictor import load_config, load_weights_strict

    assert predictor.fused_batchnorms > 0
    for model in (predictor.model.backbone.bottom_up, predictor.refiner.model.net.encoder):
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert predictor.model.backbone.bottom_up.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    unfused = build_model(predictor.cfg)
    load_weights_strict(unfused, predictor.weights, predictor.config_file)
    unfused.eval()
    unfused.paste_masks = False
    rcfg = load_config(predictor.refiner_config, device="cpu")
    unfused_refiner = build_model(rcfg)
    load_weights_strict(unfused_refiner, predictor.refiner_weights[0], predictor.refiner_config)
    refiner = HeadContourRefiner(unfused_refiner.eval(), crop_size=rcfg.HCMEASURE.HEAD_CROP.SIZE,
                                 context=rcfg.HCMEASURE.HEAD_CROP.CONTEXT)
    d = load_hc18_dicts(hc18_root, "val")[0]
    gray = read_scan(d["file_name"])
    x = predictor.preprocess(gray)
    with torch.inference_mode():
        ours_detected = predictor.model([x])[0]["head"]
        theirs_detected = unfused([x])[0]["head"]
        ours = predictor.measure([x])[0]
        theirs = refiner.refine([gray], [theirs_detected])[0]
    # with a refiner, the detector only gives the box (no ellipse fit of its own)
    assert ours_detected.ellipse is None and ours_detected.status == "not_measured"
    assert ours_detected.box == pytest.approx(theirs_detected.box, abs=0.02)
    for field in ("cx", "cy", "a", "b"):
        assert getattr(ours.ellipse, field) == pytest.approx(getattr(theirs.ellipse, field), abs=0.02), field
    assert ours.ellipse.angle == pytest.approx(theirs.ellipse.angle, abs=1e-3)
    # the refiner's ellipse is its own, not the detector's
    assert abs(ours.ellipse.a - theirs_detected.ellipse.a) > 0.02 or abs(ours.ellipse.b - theirs_detected.ellipse.b) > 0.02


def test_default_model_gives_a_90_percent_interval_that_holds_the_reference(predictor, hc18_root):
    """The shipped trust calibration turns each measurement into an interval; on a real
    scan from an examination the model never trained on it contains the reference HC."""
    from hcmeasure.data.hc18 import load_hc18_dicts
    from hcmeasure.io.images import read_scan
    from hcmeasure.measurement import head_circumference_mm
    from hcmeasure.measurement.trust import assess_head

    assert predictor.trust.q is not None, "the default model ships no trust calibration (trust.json)"
    d = load_hc18_dicts(hc18_root, "val")[0]
    gray = read_scan(d["file_name"])
    head = predictor([gray])[0]
    hc = head_circumference_mm(head.ellipse, d["pixel_size_mm"])
    assessment = assess_head(head, gray, hc, predictor.trust)
    low, high = assessment.interval_mm
    assert low <= hc <= high
    assert low <= d["hc_mm"] <= high
    assert abs(hc - d["hc_mm"]) <= 5.0
    assert assessment.reasons == ()


def test_bf16_inference_measures_within_a_fraction_of_a_millimetre_of_float32(predictor, hc18_root):
    """HCMEASURE.INFERENCE.CPU_BF16 (detector and refiner) moves a measured HC by a few
    tenths of a millimetre (fold 4 of the cross-validation: 0.2 mm on average,
    docs/trust.md); on a CPU without native bfloat16 it is float32."""
    from hcmeasure.data.hc18 import load_hc18_dicts
    from hcmeasure.io.images import read_scan
    from hcmeasure.measurement import head_circumference_mm
    from hcmeasure.modeling.precision import cpu_has_native_bf16
    from hcmeasure.predictor import HeadPredictor

    bf16 = HeadPredictor(predictor.config_file, predictor.weights, device="cpu",
                         opts=["HCMEASURE.INFERENCE.CPU_BF16", ["detector", "refiner"]])
    if not cpu_has_native_bf16():
        assert bf16.bf16 == frozenset()
        pytest.skip("this CPU has no native bfloat16: the option runs float32")
    assert bf16.bf16 == {"detector", "refiner"}
    val = load_hc18_dicts(hc18_root, "val")[:3]
    scans = [read_scan(d["file_name"]) for d in val]
    for d, a, b in zip(val, predictor(scans), bf16(scans)):
        hc_a, hc_b = (head_circumference_mm(h.ellipse, d["pixel_size_mm"]) for h in (a, b))
        assert abs(hc_a - hc_b) < 1.5, (d["file_name"], hc_a, hc_b)


def test_an_unknown_bf16_model_name_is_refused_naming_the_config_and_the_choices(predictor):
    from hcmeasure.predictor import HeadPredictor, ModelLoadError

    with pytest.raises(ModelLoadError, match=r"config\.yaml: HCMEASURE\.INFERENCE\.CPU_BF16: .*'backbone'.*detector, refiner"):
        HeadPredictor(predictor.config_file, predictor.weights, device="cpu",
                      opts=["HCMEASURE.INFERENCE.CPU_BF16", ["backbone"]])
