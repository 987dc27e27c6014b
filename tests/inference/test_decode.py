"""Decoding DetectNet_v2 grids: golden cases computed by hand, shape and value errors."""

from __future__ import annotations

import numpy as np
import pytest

from cvlab.inference.decode import decode_detectnet, expected_grid


def _grid(c: int, gh: int, gw: int, value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.zeros((c, gh, gw), np.float32),
        np.full((4 * c, gh, gw), value, np.float32),
    )


def test_golden_single_cell_by_hand() -> None:
    # model 64x32, stride 16 -> grid (2, 4). Cell i=2, j=1: gx = 16*2+0.5 = 32.5, gy = 16.5.
    # l,t,r,b = 0.2, 0.1, 0.3, 0.4 (x35 -> 7, 3.5, 10.5, 14):
    # box = (25.5, 13.0, 43.0, 30.5) in model pixels; image 128x96 -> scale (2, 3)
    # -> (51.0, 39.0, 86.0, 91.5).
    cov, bbox = _grid(1, 2, 4)
    bbox[:, 1, 2] = [0.2, 0.1, 0.3, 0.4]
    g = decode_detectnet(cov, bbox, model_size=(64, 32), image_size=(128, 96))
    assert g.grid_shape == (2, 4)
    np.testing.assert_allclose(g.boxes[0, 1 * 4 + 2], [51.0, 39.0, 86.0, 91.5], rtol=1e-6)
    # a zero regression is a point at the cell centre
    np.testing.assert_allclose(g.boxes[0, 0], [0.5 * 2, 0.5 * 3, 0.5 * 2, 0.5 * 3])


def test_golden_second_class_uses_channels_4_to_7_and_clips_to_frame() -> None:
    # class 1, cell i=0, j=0 (centre 0.5, 0.5); l=1 -> x1 = 0.5-35 < 0 -> clipped to 0;
    # b=2 -> y2 = 0.5+70 = 70.5 > 32 -> clipped to 32; r=0.5 -> x2 = 18.0; t=0 -> y1 = 0.5.
    cov, bbox = _grid(2, 2, 4)
    bbox[4:8, 0, 0] = [1.0, 0.0, 0.5, 2.0]
    bbox[0:4, 0, 0] = [9.0, 9.0, 9.0, 9.0]  # class 0 must not leak into class 1
    g = decode_detectnet(cov, bbox, model_size=(64, 32), image_size=(64, 32))
    np.testing.assert_allclose(g.boxes[1, 0], [0.0, 0.5, 18.0, 32.0])
    np.testing.assert_allclose(g.boxes[0, 0], [0.0, 0.0, 64.0, 32.0])


def test_parameters_stride_norm_offset() -> None:
    # stride 8, bbox_norm 10, offset 0: cell i=1, j=1 centre (8, 8); all 0.5 -> +-5
    cov, bbox = _grid(1, 4, 4, 0.5)
    g = decode_detectnet(
        cov, bbox, model_size=(32, 32), image_size=(32, 32), stride=8, bbox_norm=10, offset=0
    )
    np.testing.assert_allclose(g.boxes[0, 1 * 4 + 1], [3.0, 3.0, 13.0, 13.0])


def test_peoplenet_grid() -> None:
    assert expected_grid((960, 544), 16) == (34, 60)
    cov, bbox = _grid(3, 34, 60)
    g = decode_detectnet(cov, bbox, image_size=(1920, 1080))
    assert g.boxes.shape == (3, 34 * 60, 4) and g.coverage.shape == (3, 34 * 60)
    assert g.image_size == (1920, 1080)


@pytest.mark.parametrize(
    ("cov_shape", "bbox_shape", "message"),
    [
        ((3, 34, 60), (8, 34, 60), "expected 4 x 3 classes"),
        ((1, 34, 61), (4, 34, 61), "does not match"),
        ((1, 34), (4, 34), "expected output_cov"),
        ((0, 34, 60), (0, 34, 60), "empty"),
    ],
)
def test_bad_shapes(cov_shape, bbox_shape, message) -> None:
    with pytest.raises(ValueError, match=message):
        decode_detectnet(np.zeros(cov_shape, np.float32), np.zeros(bbox_shape, np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_are_rejected(bad: float) -> None:
    cov, bbox = _grid(1, 34, 60)
    bbox[2, 3, 4] = bad
    with pytest.raises(ValueError, match="output_bbox/BiasAdd contains 1 NaN/inf"):
        decode_detectnet(cov, bbox)
    cov[0, 0, 0] = bad
    with pytest.raises(ValueError, match="output_cov/Sigmoid"):
        decode_detectnet(cov, bbox)
