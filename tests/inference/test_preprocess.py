"""Preprocessing with OpenCV: resize, colour order, corrupt files, batching, in-place output.

Reading files (colour order, odd formats, reduced JPEG decoding) is tested in tests/test_images.py.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cvlab.images import UnreadableImageError, load_image, load_image_for_model
from cvlab.inference.preprocess import preprocess_image, preprocess_images


def _write_bgr(path: Path, bgr: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), bgr)
    return path


def test_grey_array_becomes_three_channels() -> None:
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


def test_the_tensor_is_bit_for_bit_the_cast_times_one_255th() -> None:
    """The normalisation's exact float32 values (labels stay byte-identical when it is made
    faster): each uint8 value cast to float32, times float32(1/255), in both channel orders."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (544, 960, 3), dtype=np.uint8)
    rgb[0, :256, 0] = np.arange(256)  # every value at least once
    reference = rgb.transpose(2, 0, 1).astype(np.float32) * np.float32(1.0 / 255.0)
    assert np.array_equal(preprocess_image(rgb, (960, 544)), reference)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    assert np.array_equal(preprocess_image(bgr, (960, 544), bgr=True), reference)


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
    with pytest.raises(UnreadableImageError, match="c.jpg: cannot decode"):
        preprocess_images([a, bad], on_error="raise")
    with pytest.raises(UnreadableImageError, match="gone.png: no such file"):
        load_image(missing)


def test_empty_batch_keeps_shape() -> None:
    batch = preprocess_images([], input_size=(64, 32))
    assert batch.tensor.shape == (0, 3, 32, 64) and len(batch) == 0


def test_bgr_path_and_in_place_batch_match_the_rgb_path(tmp_path: Path) -> None:
    """preprocess_images reads BGR (no colour conversion) and can fill a caller's array (a
    shared-memory slot); the tensor is the same RGB tensor as the documented RGB path."""
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
