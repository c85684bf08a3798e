import numpy as np
import pytest
import torch
from PIL import Image

from framer_nb import data


def test_package_photos_split_is_disjoint_and_loads():
    splits = [set(v) for v in data.SPLITS.values()]
    assert all(not (a & b) for i, a in enumerate(splits) for b in splits[i + 1:])
    assert set().union(*splits) <= set(data.PHOTOS)
    for name in data.TEST_PHOTOS + data.VAL_PHOTOS:
        img = data.photo(name)
        assert img.shape[0] == 3 and min(img.shape[-2:]) >= 128 and 0 <= img.min() and img.max() <= 1
    names = [n for n, _ in data.test_images(6, 64)]
    assert names[:4] == [f"{n}_0" for n in data.TEST_PHOTOS]
    assert len(set(data.TEST_PHOTOS + data.VAL_PHOTOS)) >= 8  # Fig. 5 uses 8 distinct held-out photos


def test_pyramid_crops_are_seeded_scaled_and_named():
    imgs = [torch.rand(3, 200, 300, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    pyr = data.Pyramid.between(imgs, 0.25, 0.75)
    assert pyr.levels[0] == 0.25 and pyr.levels[-1] == 0.75 and len(pyr.levels) == 11
    a, ia = pyr.crops(8, 32, torch.Generator().manual_seed(0), rotate=True)
    b, ib = pyr.crops(8, 32, torch.Generator().manual_seed(0), rotate=True)
    assert a.shape == (8, 3, 32, 32) and torch.equal(a, b) and ia == ib
    small = data.Pyramid.between([torch.rand(3, 40, 40)], 0.25, 1.0)
    crops, _ = small.crops(4, 32, torch.Generator().manual_seed(0))  # only scales that keep >= 32 px are used
    assert crops.shape == (4, 3, 32, 32)
    assert data.fingerprint(imgs, "x") == data.fingerprint(imgs, "x") != data.fingerprint(imgs[:2], "x")


def _palette_image():
    im = Image.fromarray(np.zeros((20, 30), np.uint8), mode="P")
    im.putpalette([60, 60, 60] + [0, 0, 0] * 255)
    return im


@pytest.mark.parametrize("mode,make", [
    ("L", lambda: Image.fromarray(np.full((20, 30), 128, np.uint8))),
    ("RGBA", lambda: Image.fromarray(np.dstack([np.full((20, 30, 3), 200, np.uint8), np.full((20, 30), 0, np.uint8)]))),
    ("P", lambda: _palette_image()),
    ("I;16", lambda: Image.fromarray(np.full((20, 30), 65535, np.uint16))),
])
def test_conversions(tmp_path, mode, make):
    path = tmp_path / f"img_{mode.replace(';', '')}.png"
    make().save(path)
    img = data.load_image(path)
    assert img.shape == (3, 20, 30) and img.dtype == torch.float32
    expected = {"L": 128 / 255, "RGBA": 1.0, "P": 60 / 255, "I;16": 1.0}[mode]  # transparent RGBA -> white
    assert torch.allclose(img, torch.full_like(img, expected), atol=1 / 255)


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(data.ImageLoadError, match="broken.png"):
        data.load_image(bad)
    with pytest.raises(data.ImageLoadError, match="nothere.png"):
        data.load_image(tmp_path / "nothere.png")


def test_folder_skip_bad_warns_and_keeps_the_rest(tmp_path):
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"garbage")
    with pytest.raises(data.ImageLoadError, match="b.jpg"):
        data.load_folder(tmp_path)
    with pytest.warns(UserWarning, match="b.jpg"):
        kept = data.load_folder(tmp_path, skip_bad=True)
    assert [p.name for p, _ in kept] == ["a.png"]
    assert (tmp_path / "b.jpg").exists()  # nothing is deleted


def test_small_images_are_upscaled_with_warning_or_rejected(tmp_path):
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(tmp_path / "tiny.png")
    with pytest.warns(UserWarning, match="tiny.png"):
        imgs = data.hr_folder(tmp_path, crop=16)
    assert min(imgs[0].shape[-2:]) == 16
    with pytest.raises(data.ImageLoadError, match="smaller than the 16px crop"):
        data.hr_folder(tmp_path, crop=16, small="error")
    crops = data.random_crops(imgs, 4, 16, torch.Generator().manual_seed(0))
    assert crops.shape == (4, 3, 16, 16)


def test_paired_folders_match_by_stem_and_name_unmatched(tmp_path):
    lr, hr = tmp_path / "LR", tmp_path / "HR"
    lr.mkdir()
    hr.mkdir()
    for stem in ("x1", "x2"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(lr / f"{stem}_LR4.png")
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(hr / f"{stem}_HR.png")
    pairs = data.paired_folders(lr, hr, scale=4)
    assert [p.name for p in pairs] == ["x1", "x2"] and pairs[0].hr.shape == (3, 32, 32)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(hr / "x3_HR.png")
    with pytest.raises(data.ImageLoadError, match="x3_HR.png"):
        data.paired_folders(lr, hr, scale=4)
    (hr / "x3_HR.png").unlink()
    Image.fromarray(np.zeros((30, 32, 3), np.uint8)).save(hr / "x2_HR.png")
    with pytest.raises(data.ImageLoadError, match="x2_HR.png.*not x4"):
        data.paired_folders(lr, hr, scale=4)
