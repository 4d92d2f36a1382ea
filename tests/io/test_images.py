"""Reading scans (hcmeasure.io.images)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hcmeasure.io.images import ImageReadError, gray_to_bgr, list_image_names, list_images, read_scan


def gradient(h=540, w=800) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return ((xs + 2 * ys) % 256).astype(np.uint8)


def test_8bit_greyscale_is_returned_unchanged(tmp_path):
    arr = gradient()
    Image.fromarray(arr, mode="L").save(tmp_path / "a.png")
    out = read_scan(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (540, 800)
    np.testing.assert_array_equal(out, arr)


def test_16bit_is_rescaled_to_8bit(tmp_path):
    arr16 = (gradient().astype(np.uint16) * 100).astype(np.uint16)  # max 25500
    im = Image.fromarray(arr16)
    assert im.mode == "I;16"
    im.save(tmp_path / "a16.png")
    out = read_scan(tmp_path / "a16.png")
    assert out.dtype == np.uint8 and out.shape == (540, 800)
    assert out.max() == 255
    expected = np.round(arr16.astype(float) * 255.0 / arr16.max()).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    # All-zero 16-bit image: stays zero, no division by zero.
    Image.fromarray(np.zeros((10, 12), np.uint16)).save(tmp_path / "zero16.png")
    assert not read_scan(tmp_path / "zero16.png").any()


def test_rgb_rgba_and_palette_become_greyscale(tmp_path):
    arr = gradient(100, 120)
    rgb = np.stack([arr, arr, arr], axis=2)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_scan(tmp_path / "rgb.png"), arr)
    rgba = np.concatenate([rgb, np.full((100, 120, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_scan(tmp_path / "rgba.png"), arr)  # alpha dropped
    Image.fromarray(arr, mode="L").convert("P").save(tmp_path / "pal.png")
    pal = read_scan(tmp_path / "pal.png")
    assert pal.shape == (100, 120) and pal.dtype == np.uint8
    assert np.abs(pal.astype(int) - arr).max() <= 8  # palette quantisation
    # Coloured pixels: luminance, not one channel.
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red, mode="RGB").save(tmp_path / "red.png")
    assert 70 <= int(read_scan(tmp_path / "red.png")[0, 0]) <= 80


def test_other_sizes_and_jpeg(tmp_path):
    arr = gradient(563, 799)
    Image.fromarray(arr).save(tmp_path / "odd.png")
    assert read_scan(tmp_path / "odd.png").shape == (563, 799)
    Image.fromarray(arr).save(tmp_path / "odd.jpg", quality=95)
    assert read_scan(tmp_path / "odd.jpg").shape == (563, 799)


def test_truncated_png_raises_with_reason(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (540, 800), dtype=np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    # Cut inside the pixel data, inside the header, inside the signature. (A file that
    # only lacks its last bytes, the zlib checksum and IEND, has every pixel and loads.)
    for keep in (len(data) // 2, len(data) - 100, 40, 8):
        p = tmp_path / f"cut{keep}.png"
        p.write_bytes(data[:keep])
        with pytest.raises(ImageReadError) as info:
            read_scan(p)
        assert info.value.reason == "unreadable_image"
        assert f"cut{keep}.png" in str(info.value)
        assert info.value.path == p


def test_text_file_named_png_raises(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("these are notes, not an image\n")
    with pytest.raises(ImageReadError, match="notes.png") as info:
        read_scan(p)
    assert info.value.reason == "unreadable_image"
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError):
        read_scan(empty)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ImageReadError) as info:
        read_scan(tmp_path / "absent.png")
    assert info.value.reason == "missing_file"


def test_list_images_splits_and_sorts(tmp_path):
    for name in ("b.PNG", "a.png", "c.tif", "notes.txt", ".hidden.png", "d.jpeg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()
    images, others = list_images(tmp_path)
    assert [p.name for p in images] == ["a.png", "b.PNG", "c.tif", "d.jpeg"]
    assert [p.name for p in others] == ["notes.txt"]


def test_list_image_names_gives_the_names_of_list_images(tmp_path):
    for name in ("b.PNG", "a.png", "c.tif", "notes.txt", ".hidden.png", "d.jpeg", "e", "f"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "e").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)  # extensionless DICOM
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "link.png").symlink_to(tmp_path / "a.png")
    images, others = list_images(tmp_path)
    names, other_names = list_image_names(tmp_path)
    assert names == [p.name for p in images] == ["a.png", "b.PNG", "c.tif", "d.jpeg", "e", "link.png"]
    assert other_names == [p.name for p in others] == ["f", "notes.txt"]


def test_gray_to_bgr():
    g = gradient(5, 6)
    bgr = gray_to_bgr(g)
    assert bgr.shape == (5, 6, 3) and bgr.dtype == np.uint8
    assert (bgr == g[:, :, None]).all()


@pytest.mark.shared
def test_real_hc18_images(hc18_root):
    scan = read_scan(hc18_root / "training_set" / "402_HC.png")
    assert scan.shape == (563, 799) and scan.dtype == np.uint8
    ann = read_scan(hc18_root / "training_set" / "402_HC_Annotation.png")
    assert ann.shape == scan.shape
    assert set(np.unique(ann)) == {0, 255}
