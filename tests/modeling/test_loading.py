"""load_model: one way to load a trained model, behaviour set through its config."""
from pathlib import Path

import pytest
import torch

from hcmeasure.modeling.loading import ModelLoadError, load_config, load_model

REPO = Path(__file__).resolve().parents[2]
CELLS = REPO / "tests" / "configs" / "Cells" / "unet_tiled_tiny_test.yaml"
HC18 = REPO / "tests" / "configs" / "HC18" / "mask_rcnn_effnet_lite0_FPN_tiny_test.yaml"


@pytest.fixture(scope="module")
def cells_checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("cells")
    torch.manual_seed(0)
    cfg, model = load_model(CELLS, None, "cpu")
    torch.save({"model": model.state_dict(), "iteration": 0}, d / "model_final.pth")
    (d / "config.yaml").write_text(cfg.dump())
    return d / "config.yaml", d / "model_final.pth", model


def test_the_checkpoint_is_loaded_and_the_model_is_ready_for_inference(cells_checkpoint):
    config, weights, trained = cells_checkpoint
    cfg, model = load_model(config, weights, "cpu")
    assert not model.training and cfg.MODEL.DEVICE == "cpu" and cfg.MODEL.WEIGHTS == ""
    for (name, a), b in zip(trained.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_checkpoint_that_does_not_fit_is_an_error_naming_both_files(cells_checkpoint, tmp_path):
    config, weights, _ = cells_checkpoint
    with pytest.raises(ModelLoadError, match=r"model_final\.pth: checkpoint does not fit config .*with other shapes"):
        load_model(config, weights, "cpu", ["MODEL.PLAIN_UNET.BASE_FILTERS", 4, "MODEL.PLAIN_UNET.FILTERS", []])
    with pytest.raises(ModelLoadError, match="checkpoint not found"):
        load_model(config, tmp_path / "missing.pth", "cpu")
    with pytest.raises(ModelLoadError, match="config file not found"):
        load_model(tmp_path / "missing.yaml", weights, "cpu")


def test_inference_behaviour_comes_from_config_keys(cells_checkpoint):
    config, weights, _ = cells_checkpoint
    cfg, tiled = load_model(config, weights, "cpu")
    assert tiled.test_tile == cfg.HCMEASURE.TILE.TEST_SIZE > 0
    _, whole = load_model(config, weights, "cpu", ["HCMEASURE.TILE.TEST_SIZE", 0])
    assert whole.test_tile == 0


def test_a_loaded_config_is_used_as_given_and_never_changed(cells_checkpoint):
    config, weights, _ = cells_checkpoint
    cfg = load_config(config, device="cpu")
    cfg.freeze()
    got, model = load_model(cfg, weights, opts=["HCMEASURE.TILE.TEST_SIZE", 0], config_file=config)
    assert model.test_tile == 0 and got.HCMEASURE.TILE.TEST_SIZE == 0
    assert cfg.HCMEASURE.TILE.TEST_SIZE > 0 and cfg.is_frozen()
    same, _ = load_model(cfg, weights)
    assert same is cfg


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_where_there_is_none_is_a_clear_error(cells_checkpoint):
    config, weights, _ = cells_checkpoint
    with pytest.raises(ModelLoadError, match="CUDA is not available"):
        load_model(config, weights, "cuda")


def test_head_rcnn_pastes_masks_and_fits_ellipses_as_its_config_says():
    from hcmeasure.modeling.meta_arch.head_rcnn import HeadRCNN

    _, model = load_model(HC18, None, "cpu", ["HCMEASURE.POSTPROCESS.FLIP_TTA", True])
    assert isinstance(model, HeadRCNN)
    assert (model.paste_masks, model.fit_ellipses, model.flip_tta) == (True, True, True)
    _, model = load_model(HC18, None, "cpu", ["HCMEASURE.POSTPROCESS.FLIP_TTA", True,
                                              "HCMEASURE.POSTPROCESS.PASTE_MASKS", False,
                                              "HCMEASURE.POSTPROCESS.FIT_ELLIPSE", False])
    # Without an ellipse of its own the detector has nothing to flip for.
    assert (model.paste_masks, model.fit_ellipses, model.flip_tta) == (False, False, False)
    x = {"image": torch.rand(3, 160, 237) * 255, "height": 540, "width": 800}
    with torch.no_grad():
        out = model([x])[0]
    assert not out["instances"].has("pred_masks")
    assert out["head"].ellipse is None and out["head"].status in ("not_measured", "no_head_detected")
