"""Preprocessing with OpenCV: file listing, colour order, odd formats, corrupt files, batching."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cvlab.inference.preprocess import (
    IMAGE_SUFFIXES,
    ImageReadError,
    list_images,
    load_image,
    preprocess_image,
    preprocess_images,
)


def _write_bgr(path: Path, bgr: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), bgr)
    return path


def test_list_images_any_case_sorted(tmp_path: Path) -> None:
    for name in ["b.JPG", "a.png", "c.jpeg", "d.txt", "e.PnG", "f.gif"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.jpg").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG", "c.jpeg", "e.PnG"]
    assert set(IMAGE_SUFFIXES) == {".jpg", ".jpeg", ".png"}
    with pytest.raises(NotADirectoryError):
        list_images(tmp_path / "a.png")


def test_load_image_is_rgb(tmp_path: Path) -> None:
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV order
    rgb = load_image(_write_bgr(tmp_path / "blue.png", bgr))
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 200]


def test_gray_16bit_and_rgba_become_three_channels(tmp_path: Path) -> None:
    gray = _write_bgr(tmp_path / "g.png", np.full((5, 7), 77, np.uint8))
    deep = _write_bgr(tmp_path / "d.png", np.full((5, 7), 40000, np.uint16))
    rgba = _write_bgr(
        tmp_path / "a.png",
        np.dstack([np.full((5, 7, 3), 9, np.uint8), np.full((5, 7), 255, np.uint8)]),
    )
    assert load_image(gray)[2, 3].tolist() == [77, 77, 77]
    assert load_image(deep)[0, 0].tolist() == [40000 >> 8] * 3
    assert load_image(rgba).shape == (5, 7, 3)
    assert preprocess_image(np.full((5, 7), 255, np.uint8), (8, 4)).shape == (3, 4, 8)


def test_preprocess_image_matches_opencv_resize() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    out = preprocess_image(rgb)
    assert out.shape == (3, 544, 960) and out.dtype == np.float32
    ref = cv2.resize(rgb, (960, 544), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    np.testing.assert_allclose(out, ref.transpose(2, 0, 1), atol=1e-6)
    assert out.min() >= 0.0 and out.max() <= 1.0
    with pytest.raises(ValueError, match="expected an"):
        preprocess_image(np.zeros((4, 4, 2), np.uint8))


def test_batch_sizes_and_corrupt_files(tmp_path: Path) -> None:
    a = _write_bgr(tmp_path / "a.jpg", np.full((100, 200, 3), 128, np.uint8))
    b = _write_bgr(tmp_path / "b.png", np.full((30, 40, 3), 255, np.uint8))
    bad = tmp_path / "c.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    missing = tmp_path / "gone.png"
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\): .*c.jpg, .*gone.png"):
        batch = preprocess_images([a, bad, b, missing], input_size=(64, 32))
    assert batch.tensor.shape == (2, 3, 32, 64) and batch.tensor.dtype == np.float32
    assert batch.original_sizes == [(200, 100), (40, 30)]
    assert batch.paths == [str(a), str(b)] and batch.skipped == [str(bad), str(missing)]
    np.testing.assert_allclose(batch.tensor[1], 1.0)
    with pytest.raises(ImageReadError, match="c.jpg: cannot decode"):
        preprocess_images([a, bad], on_error="raise")
    with pytest.raises(ImageReadError, match="gone.png: no such file"):
        load_image(missing)


def test_empty_batch_keeps_shape() -> None:
    batch = preprocess_images([], input_size=(64, 32))
    assert batch.tensor.shape == (0, 3, 32, 64) and len(batch) == 0


def test_large_jpeg_uses_reduced_decode_with_exact_original_size(tmp_path):
    import cv2

    from cvlab.inference.preprocess import (
        jpeg_size,
        load_image,
        load_image_for_model,
        preprocess_image,
    )

    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8), (0, 0), 4)
    path = tmp_path / "big.JPG"
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert jpeg_size(path) == (1920, 1080)
    rgb, size = load_image_for_model(path, (960, 544))
    assert size == (1920, 1080)
    assert rgb.shape == (540, 960, 3)  # decoded at half scale
    fast = preprocess_image(rgb, (960, 544))
    full = preprocess_image(load_image(path), (960, 544))
    assert fast.shape == full.shape == (3, 544, 960)
    assert float(np.abs(fast - full).mean()) < 0.02
    # a small model input allows a deeper reduction; a small image is read in full
    assert load_image_for_model(path, (240, 135))[0].shape == (135, 240, 3)
    small = tmp_path / "small.jpg"
    cv2.imwrite(str(small), img[:300, :400])
    assert load_image_for_model(small, (960, 544))[0].shape == (300, 400, 3)


def test_grayscale_jpeg_becomes_three_channels_in_reduced_decode(tmp_path):
    import cv2

    from cvlab.inference.preprocess import load_image_for_model

    path = tmp_path / "gray.jpeg"
    cv2.imwrite(str(path), np.full((1088, 1920), 77, np.uint8))
    rgb, size = load_image_for_model(path, (960, 544))
    assert rgb.shape == (544, 960, 3) and size == (1920, 1088)
    assert abs(int(rgb[10, 10, 0]) - 77) <= 2


def test_bgr_path_and_in_place_batch_match_the_rgb_path(tmp_path: Path) -> None:
    """preprocess_images reads BGR (no colour conversion) and can fill a caller's array (a
    shared-memory slot); the tensor is the same RGB tensor as the documented RGB path."""
    from cvlab.inference.preprocess import load_image_for_model

    rng = np.random.default_rng(3)
    paths = []
    for i, ext in enumerate(["jpg", "png", "png"]):
        bgr = rng.integers(0, 255, (60 + 10 * i, 90, 3), dtype=np.uint8)
        paths.append(str(_write_bgr(tmp_path / f"f{i}.{ext}", bgr)))
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), rng.integers(0, 255, (40, 50), dtype=np.uint8))
    paths.append(str(gray))
    bgr, size = load_image_for_model(paths[1], (64, 32), bgr=True)
    rgb, _ = load_image_for_model(paths[1], (64, 32))
    np.testing.assert_array_equal(bgr[:, :, ::-1], rgb)
    np.testing.assert_array_equal(
        preprocess_image(bgr, (64, 32), bgr=True), preprocess_image(rgb, (64, 32))
    )
    reference = np.stack([preprocess_image(load_image(p), (64, 32)) for p in paths])
    out = np.full((6, 3, 32, 64), -1.0, np.float32)
    with pytest.warns(UserWarning, match="missing.jpg"):
        batch = preprocess_images(
            [paths[0], str(tmp_path / "missing.jpg"), *paths[1:]], (64, 32), out=out
        )
    assert np.shares_memory(batch.tensor, out) and batch.tensor.shape == (4, 3, 32, 64)
    np.testing.assert_array_equal(batch.tensor, reference)
    assert (out[4:] == -1).all()  # rows past the batch untouched
    with pytest.raises(ValueError, match=r"out must be \[>=4, 3, 32, 64\]"):
        preprocess_images(paths, (64, 32), out=np.zeros((3, 3, 32, 64), np.float32))
    with pytest.raises(ValueError, match="out must be float32"):
        preprocess_image(rgb, (64, 32), out=np.zeros((3, 32, 64), np.float64))
