"""Output names, the frame writer and the done-list of an inference run (real files, no server)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from cvlab.detections import Detections
from cvlab.fileio import list_images
from cvlab.images import UnreadableImageError
from cvlab.inference.clustering_config import default_config
from cvlab.triton.outputs import (
    DONE_LIST,
    OVERLAY_QUALITY,
    FrameWriter,
    OutputNameCollision,
    count_done,
    is_case_insensitive,
    output_names,
    read_done_list,
)

CONFIG = default_config(("person", "bag", "face"))


def _image(path: Path, size: tuple[int, int], value: int) -> Path:
    cv2.imwrite(str(path), np.full((size[1], size[0], 3), value, np.uint8))
    return path


def _dets(path: Path, size: tuple[int, int], boxes: int = 1) -> Detections:
    xyxy = [[5 + i, 6, 40 + i, 50] for i in range(boxes)]
    return Detections(xyxy, [0.9] * boxes, [0] * boxes, ("person", "bag", "face"), size, str(path))


def test_same_stem_files_on_disk_get_distinct_names(tmp_path):
    for name in ("a.jpg", "a.JPG", "a.png", "b.jpg", "B.png"):
        _image(tmp_path / name, (20, 10), 0)
    paths = [str(p) for p in list_images(tmp_path)]
    names = output_names(paths, case_insensitive=is_case_insensitive(tmp_path))
    assert len(set(names.values())) == len(paths) == 5
    assert {Path(p).name: n for p, n in names.items()} == {
        "a.jpg": "a.jpg", "a.JPG": "a.JPG", "a.png": "a.png", "b.jpg": "b", "B.png": "B",
    }  # fmt: skip
    # on a case-insensitive output folder, b and B would collide: they keep their suffix ...
    some = [str(tmp_path / n) for n in ("a.png", "b.jpg", "B.png")]
    assert list(output_names(some, case_insensitive=True).values()) == ["a", "b.jpg", "B.png"]
    # ... and a.jpg / a.JPG cannot be told apart there: refused before anything runs
    with pytest.raises(OutputNameCollision, match="a.JPG and .*a.jpg would both write"):
        output_names(paths, case_insensitive=True)


def test_names_that_still_collide_are_refused(tmp_path):
    with pytest.raises(OutputNameCollision, match="x/a.jpg and y/a.jpg would both write a.jpg"):
        output_names(["x/a.jpg", "y/a.jpg"])
    with pytest.raises(OutputNameCollision, match="x/a.jpg is listed twice"):
        output_names(["x/a.jpg", "x/b.jpg", "x/a.jpg"])


def test_case_probe_matches_the_filesystem(tmp_path):
    (tmp_path / "Probe").write_text("x")
    assert is_case_insensitive(tmp_path) == (tmp_path / "probe").exists()
    assert sorted(os.listdir(tmp_path)) == ["Probe"]  # the probe file is gone


def test_each_frame_is_written_overlay_first_then_label_then_done_list(tmp_path, monkeypatch):
    """os.replace is spied on (the real function runs): per frame, the overlay's rename comes
    before the label's, and the done-list line only after both."""
    images = [_image(tmp_path / f"f{i}.png", (64 + 8 * i, 48), 40 * i) for i in range(5)]
    events: list[str] = []
    real_replace = os.replace

    def spy(src, dst):
        real_replace(src, dst)
        events.append(Path(dst).name)

    monkeypatch.setattr(os, "replace", spy)
    out = tmp_path / "out"
    with FrameWriter(out, CONFIG, workers=3, queue_size=2) as writer:
        for i, path in enumerate(images):
            frame = cv2.imread(str(path))
            writer.submit(_dets(path, (64 + 8 * i, 48), i), path.stem, frame)
        assert writer.done_path == out / DONE_LIST
    done = [line.split("\t") for line in (out / DONE_LIST).read_text().splitlines()]
    assert sorted(done) == sorted([p.stem, str(p)] for p in images)
    for i, path in enumerate(images):
        assert events.index(f"{path.stem}.jpg") < events.index(f"{path.stem}.txt")
        overlay = cv2.imread(str(out / "infer_images" / f"{path.stem}.jpg"))
        assert overlay.shape == (48, 64 + 8 * i, 3)
        assert len((out / "infer_labels" / f"{path.stem}.txt").read_text().splitlines()) == i
    assert count_done(out) == 5 and writer.written == 5
    assert set(read_done_list(out)) == {p.stem for p in images}


def test_overlay_size_quality_and_labels_only(tmp_path):
    big = _image(tmp_path / "big.jpg", (1280, 720), 0)
    frame = cv2.imread(str(big))
    frame[::7] = 255  # texture, so JPEG quality shows in the file size
    sizes = {}
    for quality in (30, 95):
        out = tmp_path / f"q{quality}"
        with FrameWriter(out, CONFIG, overlay_max_size=(320, 320), overlay_quality=quality) as w:
            w.submit(_dets(big, (1280, 720)), "big", frame)
        overlay = out / "infer_images" / "big.jpg"
        assert cv2.imread(str(overlay)).shape == (180, 320, 3)
        sizes[quality] = overlay.stat().st_size
    assert sizes[30] < sizes[95]
    with FrameWriter(tmp_path / "labels", CONFIG, images=False) as writer:
        writer.submit(_dets(big, (1280, 720)), "big", frame)
    assert writer.images_dir is None and not (tmp_path / "labels" / "infer_images").exists()
    assert (tmp_path / "labels" / "infer_labels" / "big.txt").is_file()
    with pytest.raises(ValueError, match="quality must be 1-100"):
        FrameWriter(tmp_path / "bad", CONFIG, overlay_quality=0)


def test_a_write_error_stops_the_writer_and_is_raised(tmp_path):
    """A source image deleted before its overlay is drawn (no decoded frame handed over)."""
    good = _image(tmp_path / "good.png", (32, 32), 9)
    gone = tmp_path / "gone.png"
    writer = FrameWriter(tmp_path / "out", CONFIG, workers=1)
    writer.submit(_dets(good, (32, 32)), "good")  # read from the file: it is there
    writer.submit(_dets(gone, (32, 32)), "gone")
    with pytest.raises(UnreadableImageError, match="gone.png"):
        writer.close()
    with pytest.raises(UnreadableImageError):
        writer.submit(_dets(good, (32, 32)), "again")
    assert read_done_list(tmp_path / "out") == {"good": str(good)}
    assert not (tmp_path / "out" / "infer_labels" / "gone.txt").exists()


def test_resume_keeps_the_done_list_and_ignores_frames_without_label(tmp_path):
    out = tmp_path / "out"
    image = _image(tmp_path / "a.png", (16, 16), 0)
    with FrameWriter(out, CONFIG) as writer:
        writer.submit(_dets(image, (16, 16)), "a", cv2.imread(str(image)))
    with (out / DONE_LIST).open("a") as handle:  # a line whose label vanished
        handle.write("ghost\tx/ghost.png\n")
    assert read_done_list(out) == {"a": str(image)}
    with FrameWriter(out, CONFIG, resume=True):
        pass
    assert count_done(out) == 2  # kept
    with FrameWriter(out, CONFIG):
        pass
    assert count_done(out) == 0  # a fresh run starts its list anew


def test_output_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        FrameWriter(tmp_path / "file", CONFIG)


@pytest.mark.parametrize("max_size", [None, (320, 320)], ids=["full size", "fitted"])
def test_an_overlay_drawn_on_the_handed_frame_is_the_file_drawn_on_a_copy(tmp_path, max_size):
    """Issue 23: the writer draws on the frame it is handed (no copy of it); the overlay file is
    byte for byte the one drawn on a copy, full size and fitted."""
    from cvlab.viz.overlay import colors_from_config, save_overlay

    big = _image(tmp_path / "big.jpg", (1280, 720), 0)
    frame = cv2.imread(str(big))
    frame[::5, ::3] = (30, 200, 90)  # texture under the boxes
    pristine = frame.copy()
    dets = _dets(big, (1280, 720), 3)
    with FrameWriter(tmp_path / "out", CONFIG, overlay_max_size=max_size) as writer:
        writer.submit(dets, "big", frame)
    reference = save_overlay(
        tmp_path / "ref.jpg", pristine, dets, colors=colors_from_config(CONFIG),
        linewidth=CONFIG.linewidth, quality=OVERLAY_QUALITY, bgr=True, max_size=max_size,
    )  # fmt: skip
    written = tmp_path / "out" / "infer_images" / "big.jpg"
    assert written.read_bytes() == reference.read_bytes()
    if max_size is None:
        assert not np.array_equal(frame, pristine)  # drawn on: no copy was made
    else:
        assert np.array_equal(frame, pristine)  # drawn on the fitted copy only


def test_drawing_in_place_never_writes_into_a_read_only_frame() -> None:
    from cvlab.viz.overlay import draw_detections

    frame = np.zeros((100, 100, 3), np.uint8)
    frame.setflags(write=False)
    dets = Detections([[10, 10, 50, 90]], [0.9], [0], ("person",), (100, 100))
    drawn = draw_detections(frame, dets, {"person": (0, 255, 0)}, copy=False)
    assert drawn is not frame and drawn[50, 10].tolist() == [0, 255, 0] and not frame.any()
