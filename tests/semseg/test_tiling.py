"""Tiler: offsets, exact split-then-stitch round trip for identity models (any size, any
overlap, sizes not divisible by the step), blend merge, wrapper of a semantic model."""
import itertools

import pytest
import torch

from hcmeasure.semseg.tiling import TiledSemanticModel, blend_window, tile_grid, tile_starts, tiled_apply


def identity(tiles):
    return [t.clone() for t in tiles]


def test_tile_starts_by_hand():
    assert tile_starts(400, 200, 100) == [0, 100, 200]
    assert tile_starts(450, 200, 100) == [0, 100, 200, 250]  # last one moved back to the border
    assert tile_starts(150, 200, 100) == [0]
    assert tile_starts(200, 200, 0) == [0]
    assert tile_starts(1200, 200, 100) == list(range(0, 1001, 100))
    with pytest.raises(ValueError):
        tile_starts(100, 50, 50)
    with pytest.raises(ValueError):
        tile_starts(100, 0, 0)


@pytest.mark.parametrize("length,size,overlap", list(itertools.product([1, 7, 31, 64, 97], [5, 16, 32], [0, 1, 3, 4])))
def test_tiles_cover_every_pixel_and_stay_inside(length, size, overlap):
    starts = tile_starts(length, size, overlap)
    covered = torch.zeros(length, dtype=torch.bool)
    for a, b in zip(starts, starts[1:]):
        assert b - a <= size - overlap  # neighbours share at least `overlap`
    for s in starts:
        n = min(size, length)
        assert 0 <= s and s + n <= length
        covered[s:s + n] = True
    assert covered.all()


@pytest.mark.parametrize("shape,size,overlap,batch", [
    ((3, 37, 53), 16, 5, 1), ((1, 64, 64), 16, 8, 3), ((2, 10, 91), 32, 31, 4),
    ((3, 5, 7), 200, 100, 2), ((3, 101, 103), 20, 0, 7), ((4, 120, 160), 40, 20, 100)])
@pytest.mark.parametrize("merge", ["max", "blend"])
def test_identity_round_trip(shape, size, overlap, batch, merge):
    g = torch.Generator().manual_seed(sum(shape) + size + overlap)
    image = torch.randn(shape, generator=g)
    out = tiled_apply(identity, image, size=size, overlap=overlap, merge=merge, batch_size=batch)
    if merge == "max":
        assert torch.equal(out, image)  # bit for bit
    else:
        torch.testing.assert_close(out, image, rtol=1e-6, atol=1e-6)


def test_max_merge_takes_the_largest_overlap_value():
    image = torch.zeros(1, 1, 30)
    calls = []

    def fn(tiles):
        calls.append(len(tiles))
        return [torch.full_like(t, float(len(calls))) for t in tiles]  # tile i -> value i

    out = tiled_apply(fn, image, size=10, overlap=5, merge="max", batch_size=1)
    # starts 0, 5, 10, 15, 20: pixel x is covered last by the tile starting at <= x.
    expected = torch.tensor([1.0] * 5 + [2] * 5 + [3] * 5 + [4] * 5 + [5] * 10)
    assert torch.equal(out[0, 0], expected)
    assert calls == [1] * 5


def test_blend_window_is_positive_and_smooth():
    w = blend_window(10, 10, 4)
    assert w.min() > 0 and w.max() == 1
    assert w[0, 0] == pytest.approx(1 / 16) and w[5, 5] == 1


def test_grid_of_a_study_image():
    boxes = tile_grid(1200, 1600, 200, 100)
    assert len(boxes) == 11 * 15
    assert all((h, w) == (200, 200) for _, _, h, w in boxes)


def test_wrapper_matches_whole_image_for_pointwise_model():
    class PointwiseModel:
        def __call__(self, inputs):
            return [{"sem_seg": torch.stack([x["image"][0], -x["image"][0]]).softmax(0)} for x in inputs]

    img = torch.rand(3, 45, 70)
    whole = PointwiseModel()([{"image": img}])[0]["sem_seg"]
    for merge in ("max", "blend"):
        tiled = TiledSemanticModel(PointwiseModel(), 16, 6, merge, batch_size=2)([{"image": img}])[0]["sem_seg"]
        torch.testing.assert_close(tiled, whole, rtol=1e-6, atol=1e-6)
