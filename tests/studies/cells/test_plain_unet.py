"""PlainUNet: configurable depth and filters, the semantic protocol, tiled inference, and
the cell-outline study's failure fixed: on two small synthetic outline images (4 %
outline pixels) the default loss (class-weighted CE + soft Dice) overfits to outline Dice
>= 0.8, while plain CE with the same budget stays at the all-background solution."""
import numpy as np
import pytest
import torch

from hcmeasure.studies.cells.data import outline_target, synthetic_cells
from hcmeasure.studies.cells.evaluation import outline_counts, outline_metrics

CONFIG = "tests/configs/Cells/unet_tiled_tiny_test.yaml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build(opts=()):
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    from hcmeasure.config import add_hcmeasure_config

    cfg = add_hcmeasure_config(get_cfg())
    cfg.merge_from_file(CONFIG)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", *opts])
    torch.manual_seed(0)
    return build_model(cfg)


def test_depth_and_filters_from_config():
    from hcmeasure.studies.cells.plain_unet import PlainUNet, plain_unet_filters

    m = build()
    assert isinstance(m, PlainUNet)
    assert m.net.encoder.out_channels == (8, 16, 32) and m.size_divisibility == 4
    m = build(["MODEL.PLAIN_UNET.DEPTH", "4", "MODEL.PLAIN_UNET.FILTERS", "[4, 6, 8, 10]"])
    assert m.net.encoder.out_channels == (4, 6, 8, 10) and m.size_divisibility == 8
    assert len(m.net.decoder.blocks) == 3
    with pytest.raises(ValueError, match="FILTERS"):
        plain_unet_filters(3, [1, 2])
    m.eval()
    with torch.no_grad():
        out = m([{"image": torch.randint(0, 255, (3, 37, 45)).float()}])
    assert out[0]["sem_seg"].shape == (2, 37, 45)
    torch.testing.assert_close(out[0]["sem_seg"].sum(0), torch.ones(37, 45))


def test_tiled_inference_covers_large_images_with_tiles():
    m = build(["MODEL.PLAIN_UNET.NORM", ""])
    m.eval()
    img = torch.randint(0, 255, (3, 100, 130)).float()
    calls = []
    inner = m.net.forward
    m.net.forward = lambda x: calls.append(tuple(x.shape)) or inner(x)
    with torch.no_grad():
        tiled = m([{"image": img}])[0]["sem_seg"]
    assert tiled.shape == (2, 100, 130)
    assert all(s[-2:] == (48, 48) for s in calls) and sum(s[0] for s in calls) == 3 * 4
    # stitched scores: per tile the model's own (max over overlaps), so still in [0, 1]
    assert 0 <= tiled.min() and tiled.max() <= 1
    # an image no larger than a tile is run whole, as without tiling
    small = img[:, :48, :40]
    with torch.no_grad():
        a = m([{"image": small}])[0]["sem_seg"]
        m.test_tile = 0
        b = m([{"image": small}])[0]["sem_seg"]
    assert torch.equal(a, b)


def _data():
    rng = np.random.default_rng(0)
    data = []
    for _ in range(2):
        img, ann = synthetic_cells(rng, 64, 64, n_cells=3, radius=(7, 12), membrane=0.5, noise=10)
        target = outline_target(ann)  # 1-px outlines, no widening
        data.append({"image": torch.as_tensor(img.transpose(2, 0, 1).copy()),
                     "sem_seg": torch.as_tensor(target.astype(np.int64))})
    return data


def _overfit(data, opts, steps=80, lr=0.004):
    m = build(["MODEL.PLAIN_UNET.NORM", "", *opts])
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    m.train()
    for _ in range(steps):
        loss = sum(m(data).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        out = m([{"image": d["image"]} for d in data])
    preds = [o["sem_seg"].argmax(0).numpy() for o in out]
    counts = sum(outline_counts(p, d["sem_seg"].numpy()) for p, d in zip(preds, data))
    return outline_metrics(*counts.tolist()), float(np.mean([(p == 1).mean() for p in preds]))


@pytest.mark.slow
def test_imbalance_losses_overfit_where_plain_ce_collapses():
    data = _data()
    outline_fraction = float(np.mean([d["sem_seg"].float().mean() for d in data]))
    assert 0.02 < outline_fraction < 0.06
    ours, ours_frac = _overfit(data, [])  # config: CE weighted [1, 10] + soft Dice of the outline
    ce, ce_frac = _overfit(data, ["MODEL.SEG_LOSS.CLASS_WEIGHTS", "[]", "MODEL.SEG_LOSS.DICE_WEIGHT", "0.0"])
    print(f"\noutline pixels {outline_fraction:.3f}; weighted CE + Dice: {dict(ours)}; predicted outline "
          f"{ours_frac:.3f}\nplain CE: {dict(ce)}; predicted outline {ce_frac:.3f}")
    assert ours["dice"] >= 0.8
    # plain CE: (nearly) all background, high accuracy, outline missed — the study's failure
    assert ce_frac < 0.2 * outline_fraction and ce["dice"] < 0.2
    assert ce["accuracy"] > 0.94 and ce["recall_outline"] < 0.2
