"""cvlab.images: header sizes, RGB loading, reduced JPEG decoding, 16-bit thermal, one error class."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.images import bomb_jpeg

from cvlab.errors import CvlabError
from cvlab.images import (
    ImageTooLargeError,
    UnreadableImageError,
    image_size,
    load_image,
    load_image_for_model,
    load_thermal,
    normalize_16bit,
    to_training_image,
)
from cvlab.inference.preprocess import preprocess_image


def _write(path: Path, image: np.ndarray, params: tuple[int, ...] = ()) -> Path:
    assert cv2.imwrite(str(path), image, list(params))
    return path


def test_image_size_from_the_header_of_each_format(tmp_path: Path) -> None:
    grey = np.zeros((37, 53), np.uint8)
    for name in ("a.jpg", "b.PNG", "c.tiff", "d.bmp"):
        assert image_size(_write(tmp_path / name, grey)) == (53, 37)
    deep = _write(tmp_path / "deep.png", np.zeros((21, 34), np.uint16))
    assert image_size(deep) == (34, 21)


def test_truncated_jpeg(tmp_path: Path) -> None:
    """Cut in the scan: the header still gives the size, but every reader refuses the pixels
    (imread would fill the missing rows with grey: issue 20 item 8); cut in the headers: one
    UnreadableImageError from the header reader and the decoders."""
    noise = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", noise)[1].tobytes()
    scan_cut = tmp_path / "scan_cut.jpg"
    scan_cut.write_bytes(data[: len(data) // 2])
    assert image_size(scan_cut) == (160, 120)
    for read in (
        lambda p: load_image_for_model(p, (64, 32)),  # at a reduced scale
        lambda p: load_image_for_model(p, (160, 120)),  # in full
        load_image,
        load_thermal,
    ):
        with pytest.raises(UnreadableImageError, match="scan_cut.jpg: cannot decode image"):
            read(scan_cut)
    header_cut = tmp_path / "header_cut.jpg"
    header_cut.write_bytes(data[:150])
    with pytest.raises(UnreadableImageError, match="header_cut.jpg: cannot read image header"):
        image_size(header_cut)
    with pytest.raises(UnreadableImageError, match="header_cut.jpg: cannot decode image"):
        load_image_for_model(header_cut)
    with pytest.raises(UnreadableImageError, match="header_cut.jpg: cannot decode image"):
        load_thermal(header_cut)


def write_exif_jpeg(path: Path, rgb: np.ndarray, orientation: int) -> Path:
    """A real JPEG written by Pillow with an EXIF Orientation tag."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(path, quality=95, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_imread_does(tmp_path: Path, orientation: int) -> None:
    """Issue 20 item 4: every reader (full, reduced, header) gives the upright frame, as
    ``cv2.imread`` with its default flag does."""
    rng = np.random.default_rng(orientation)
    rgb = cv2.resize(rng.integers(0, 255, (9, 16, 3), dtype=np.uint8), (1920, 1080))
    path = write_exif_jpeg(tmp_path / "tagged.jpg", rgb, orientation)
    upright = cv2.imread(str(path))  # OpenCV's default: EXIF applied
    size = (upright.shape[1], upright.shape[0])
    assert size == ((1080, 1920) if orientation >= 5 else (1920, 1080))
    assert image_size(path) == size
    assert image_size(path, oriented=False) == (1920, 1080)
    np.testing.assert_array_equal(load_image(path, bgr=True), upright)
    full, original = load_image_for_model(path, (1 << 20, 1 << 20), bgr=True)
    np.testing.assert_array_equal(full, upright)
    assert original == size
    reduced, original = load_image_for_model(path, (240, 240), bgr=True)  # 1/4 scale
    assert original == size
    assert reduced.shape[:2] == (upright.shape[0] // 4, upright.shape[1] // 4)
    small = cv2.resize(upright, reduced.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.astype(int) - small).mean() < 4
    grey = load_thermal(path)
    assert grey.shape == upright.shape[:2]


def test_an_image_over_the_pixel_limit_is_unreadable(tmp_path: Path) -> None:
    """Issue 20 item 5: PIL's decompression-bomb guard (178.9 MP) is an UnreadableImageError
    naming the file, from every reader, not a crash."""
    path = bomb_jpeg(tmp_path / "huge.jpg", 20000, 10000)
    for read in (image_size, load_image, load_image_for_model, load_thermal):
        with pytest.raises(ImageTooLargeError, match="huge.jpg: too large to decode"):
            read(path)
    assert issubclass(ImageTooLargeError, UnreadableImageError)


def test_one_error_class_for_missing_and_non_images(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for path in (tmp_path / "gone.jpg", text):
        with pytest.raises(UnreadableImageError, match="cannot read image header") as err:
            image_size(path)
        assert err.value.path == str(path)
    with pytest.raises(UnreadableImageError, match="gone.png: no such file"):
        load_image(tmp_path / "gone.png")
    with pytest.raises(UnreadableImageError, match="notes.png: cannot decode image"):
        load_image(text)
    err = UnreadableImageError(text, "cannot decode image")
    assert isinstance(err, CvlabError) and isinstance(err, OSError)
    again = pickle.loads(pickle.dumps(err))  # crosses worker processes intact
    assert (str(again), again.path, again.reason) == (str(err), err.path, err.reason)


def test_load_image_is_rgb_whatever_the_file(tmp_path: Path) -> None:
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV order
    rgb = load_image(_write(tmp_path / "blue.png", bgr))
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 200]
    assert load_image(tmp_path / "blue.png", bgr=True)[0, 0].tolist() == [200, 0, 0]
    gray = _write(tmp_path / "g.png", np.full((5, 7), 77, np.uint8))
    rgba = _write(
        tmp_path / "a.png",
        np.dstack([np.full((5, 7, 3), 9, np.uint8), np.full((5, 7), 255, np.uint8)]),
    )
    assert load_image(gray)[2, 3].tolist() == [77, 77, 77]
    assert load_image(rgba).shape == (5, 7, 3)


def test_16bit_png_loads_as_rgb_high_byte_and_as_normalised_thermal(tmp_path: Path) -> None:
    raw = np.full((40, 50), 8000, np.uint16)
    raw[:20] = 7000
    path = _write(tmp_path / "radiometric.png", raw)
    assert load_image(path)[0, 0].tolist() == [7000 >> 8] * 3
    grey = load_thermal(path, "16bit")
    assert grey.dtype == np.uint8 and grey.shape == (40, 50)
    assert grey[0, 0] == 0 and grey[30, 0] == 255
    np.testing.assert_array_equal(grey, normalize_16bit(raw))
    eight = _write(tmp_path / "eight.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(UnreadableImageError, match="expected a 16-bit image, got uint8"):
        load_thermal(eight, "16bit")
    assert load_thermal(tmp_path / "eight.png").shape == (4, 4)
    assert to_training_image(grey, (25, 20)).shape == (20, 25, 3)


def test_large_jpeg_uses_reduced_decode_with_exact_original_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8), (0, 0), 4)
    path = _write(tmp_path / "big.JPG", img, (cv2.IMWRITE_JPEG_QUALITY, 95))
    assert image_size(path) == (1920, 1080)
    rgb, size = load_image_for_model(path, (960, 544))
    assert size == (1920, 1080)
    assert rgb.shape == (540, 960, 3)  # decoded at half scale
    fast = preprocess_image(rgb, (960, 544))
    full = preprocess_image(load_image(path), (960, 544))
    assert fast.shape == full.shape == (3, 544, 960)
    assert float(np.abs(fast - full).mean()) < 0.02
    # a small model input allows a deeper reduction; a small image is read in full
    assert load_image_for_model(path, (240, 135))[0].shape == (135, 240, 3)
    small = _write(tmp_path / "small.jpg", img[:300, :400])
    assert load_image_for_model(small, (960, 544))[0].shape == (300, 400, 3)


def test_grayscale_jpeg_becomes_three_channels_in_reduced_decode(tmp_path: Path) -> None:
    path = _write(tmp_path / "gray.jpeg", np.full((1088, 1920), 77, np.uint8))
    rgb, size = load_image_for_model(path, (960, 544))
    assert rgb.shape == (544, 960, 3) and size == (1920, 1088)
    assert abs(int(rgb[10, 10, 0]) - 77) <= 2


def test_only_real_jpegs_are_decoded_at_reduced_scale(tmp_path: Path) -> None:
    """A PNG named .jpg is read in full (OpenCV would resize it itself, another result)."""
    ok, buf = cv2.imencode(".png", np.full((1080, 1920, 3), 50, np.uint8))
    path = tmp_path / "png_inside.jpg"
    path.write_bytes(buf.tobytes())
    rgb, size = load_image_for_model(path, (960, 544))
    assert rgb.shape == (1080, 1920, 3) and size == (1920, 1080)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UnreadableImageError, match="bad.jpg: cannot decode image"):
        load_image_for_model(bad)
