"""The inference path against a real local Triton: unreadable images, colliding names, class
lists, frames decoded once, outputs written as a unit, interrupted and resumed runs."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.images import bomb_jpeg
from support.triton import (  # noqa: F401 - fixture
    MODEL,
    demo_server,
    infer_argv,
    write_test_images,
)

from cvlab import images
from cvlab.cli import main
from cvlab.images import load_image
from cvlab.inference.clustering_config import PEOPLENET_RGB_CONFIG, load_clustering_config
from cvlab.triton.outputs import DONE_LIST, FAILED_LIST, read_done_list, split_line
from cvlab.triton.pipeline import run_inference
from cvlab.triton.server import free_port
from cvlab.viz.overlay import colors_from_config, save_overlay

pytestmark = pytest.mark.server


def _infer(images, url: str, out: Path, *extra: str) -> list[str]:
    return infer_argv(images, url, out, *extra, batch=4)


def _stems(folder: Path, suffix: str) -> list[str]:
    """Stems of the finished files (a SIGKILLed writer may leave its temporary file)."""
    from cvlab.fileio import is_unfinished_write

    return sorted(
        p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}") if not is_unfinished_write(p.name)
    )


@pytest.fixture
def mixed(tmp_path) -> tuple[Path, list[Path], dict[Path, str]]:
    """6 good JPEGs plus two unreadable files: text named .jpg and an empty .png."""
    folder = tmp_path / "mixed"
    good = write_test_images(folder, 6)
    bad = {folder / "notes.jpg": "not an image", folder / "empty.png": ""}
    for path, text in bad.items():
        path.write_text(text)
    return folder, good, {p: "cannot decode image" for p in bad}


@pytest.mark.filterwarnings("ignore")  # PYTHONWARNINGS=ignore: the summary still names them
def test_unreadable_images_are_named_with_their_reason_and_exit_3(
    demo_server,  # noqa: F811
    mixed,
    tmp_path,
    capsys,
):
    folder, good, bad = mixed
    out = tmp_path / "out"
    assert main(_infer(folder, demo_server.http_url, out)) == 3
    captured = capsys.readouterr()
    assert "6 image(s)" in captured.out and "6 frame(s) done" in captured.out
    assert "skipped 2 unreadable image(s):" in captured.err
    for path, reason in bad.items():
        assert f"  {path}: {reason}" in captured.err
    assert _stems(out / "infer_labels", ".txt") == sorted(p.stem for p in good)
    assert sorted(read_done_list(out)) == sorted(p.stem for p in good)
    failed = [line.split("\t") for line in (out / FAILED_LIST).read_text().splitlines()]
    assert sorted(name for name, _, _ in failed) == sorted(p.stem for p in bad)
    for _, image, why in failed:
        assert why.startswith(bad[Path(image)]), (image, why)
    assert "2 frame(s) without outputs, listed in" in captured.err
    for path in bad:
        path.unlink()
    assert main(_infer(folder, demo_server.http_url, out)) == 0  # nothing failed: no list
    assert not (out / FAILED_LIST).exists()
    missing = tmp_path / "gone.jpg"
    summary = run_inference(
        [*map(str, good[:2]), str(missing)],
        MODEL,
        demo_server.http_url,
        batch_size=4,
        progress=False,
    )
    assert summary.skipped == [(str(missing), "no such file")] and summary.exit_status == 3


def test_on_error_raise_stops_at_the_first_unreadable_image_in_one_line(
    demo_server,  # noqa: F811
    mixed,
    tmp_path,
    capsys,
):
    folder, _, _ = mixed
    assert main(_infer(folder, demo_server.http_url, tmp_path / "out", "--on-error", "raise")) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cvlab infer: error: "), lines
    assert "empty.png" in lines[0] or "notes.jpg" in lines[0]


def test_images_sharing_a_stem_never_overwrite_each_other(demo_server, tmp_path, capsys):  # noqa: F811
    """a.jpg, a.JPG, a.png (different pictures and sizes) and b.jpg: four label files, four
    overlays, each from its own image."""
    folder = tmp_path / "same"
    folder.mkdir()
    rng = np.random.default_rng(3)
    sizes = {"a.jpg": (200, 120), "a.JPG": (240, 136), "a.png": (280, 160), "b.jpg": (216, 128)}
    for name, (w, h) in sizes.items():
        image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        cv2.rectangle(image, (20, 10), (90, 100), (255, 255, 255), -1)
        cv2.imwrite(str(folder / name), image)
    out = tmp_path / "out"
    assert main(_infer(folder, demo_server.http_url, out)) == 0
    captured = capsys.readouterr()
    assert "3 image(s) share a file stem" in captured.out and "a.JPG -> a.JPG.txt" in captured.out
    names = {"a.jpg": "a.jpg", "a.JPG": "a.JPG", "a.png": "a.png", "b.jpg": "b"}
    assert _stems(out / "infer_labels", ".txt") == sorted(names.values())
    assert _stems(out / "infer_images", ".jpg") == sorted(names.values())
    for image, name in names.items():
        w, h = sizes[image]
        assert cv2.imread(str(out / "infer_images" / f"{name}.jpg")).shape == (h, w, 3)
        alone = run_inference(
            [str(folder / image)], MODEL, demo_server.http_url, batch_size=1,
            postprocessing_config=PEOPLENET_RGB_CONFIG, progress=False,
        )  # fmt: skip
        lines = (out / "infer_labels" / f"{name}.txt").read_text().splitlines()
        assert len(lines) == len(alone.detections[0]), image
        assert read_done_list(out)[name] == str(folder / image)


def test_colliding_names_are_refused_before_any_request(tmp_path, capsys):
    """Same file names from two folders: refused with one line before the (closed) port is
    ever contacted."""
    for sub in ("x", "y"):
        write_test_images(tmp_path / sub, 1)
    paths = [str(tmp_path / sub / "frame_000.jpg") for sub in ("x", "y")]
    url = f"127.0.0.1:{free_port()}"
    from cvlab.triton.outputs import OutputNameCollision

    with pytest.raises(OutputNameCollision, match="would both write frame_000.jpg.txt"):
        run_inference(paths, MODEL, url, output_path=tmp_path / "out", progress=False)


@pytest.mark.parametrize(
    ("class_list", "message"),
    [
        ("person,,face", "--class_list: class 2 of 'person,,face' is empty"),
        ("", "--class_list: class 1 of '' is empty"),
        ("person,Bag,face", "'Bag' is not a KITTI-safe class name (lower case, no spaces): "
         "write 'bag'"),
        ("person,other vehicle", "write 'other_vehicle'"),
        ("person,person", "class 'person' is given twice"),
    ],
)  # fmt: skip
def test_bad_class_lists_are_refused_in_one_line(class_list, message, tmp_path, capsys):
    write_test_images(tmp_path / "images", 1)
    url = f"127.0.0.1:{free_port()}"  # nothing listens: refused before any connection
    argv = _infer(tmp_path / "images", url, tmp_path / "out", "--class_list", class_list)
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cvlab infer: error: "), lines
    assert message in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("shared_memory", ["system", "none"])
def test_each_frame_is_decoded_once_and_its_overlay_matches_a_fresh_read(
    demo_server,  # noqa: F811
    tmp_path,
    monkeypatch,
    shared_memory,
):
    """The decoders are spied on (the real ones run): one decode per image for tensor and
    overlay (every file from its bytes, read once); the overlay equals one
    drawn from the file read again, so frames and Detections pair up."""
    paths = [str(p) for p in write_test_images(tmp_path / "images", 9)]
    png = tmp_path / "images" / "frame_009.png"
    cv2.imwrite(str(png), cv2.imread(paths[0])[:100])
    paths.append(str(png))
    reads: Counter = Counter()
    real_imread, real_decode = cv2.imread, images._decode

    def imread(path, *args):
        reads[str(path)] += 1
        return real_imread(path, *args)

    def decode(path, data, flag, *orientation):
        reads[str(path)] += 1
        return real_decode(path, data, flag, *orientation)

    monkeypatch.setattr(cv2, "imread", imread)
    monkeypatch.setattr(images, "_decode", decode)
    out = tmp_path / "out"
    summary = run_inference(
        paths, MODEL, demo_server.http_url, batch_size=4, output_path=out,
        postprocessing_config=PEOPLENET_RGB_CONFIG, progress=False, shared_memory=shared_memory,
    )  # fmt: skip
    assert reads == dict.fromkeys(paths, 1)
    assert summary.written == len(paths) and sum(len(d) for d in summary.detections) > 0
    config = load_clustering_config(PEOPLENET_RGB_CONFIG)
    for dets, path in zip(summary.detections, paths, strict=True):
        ref = save_overlay(
            tmp_path / "ref" / f"{Path(path).stem}.jpg", load_image(path), dets,
            colors=colors_from_config(config), linewidth=config.linewidth, quality=75,
        )  # fmt: skip
        got = out / "infer_images" / f"{Path(path).stem}.jpg"
        assert got.read_bytes() == ref.read_bytes(), path


def test_overlay_options_and_labels_only(demo_server, tmp_path, capsys, monkeypatch):  # noqa: F811
    """--overlay-size decodes a large JPEG once at a reduced scale (1/4 here) for both the
    tensor and the overlay; --no-images writes labels only."""
    folder = tmp_path / "big"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        image = cv2.resize(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8), (1280, 768))
        cv2.imwrite(str(folder / f"big_{i}.jpg"), image)
    flags: list = []
    real_decode = images._decode
    monkeypatch.setattr(
        images, "_decode", lambda p, d, f, *o: flags.append(f) or real_decode(p, d, f, *o)
    )
    out = tmp_path / "small"
    argv = _infer(folder, demo_server.http_url, out, "--overlay-size", "320x192")
    assert main([*argv, "--overlay-quality", "50"]) == 0
    assert flags == [cv2.IMREAD_REDUCED_COLOR_4] * 3  # 320x192: the model input and overlay
    for i in range(3):
        assert cv2.imread(str(out / "infer_images" / f"big_{i}.jpg")).shape == (192, 320, 3)
    labels_only = tmp_path / "labels_only"
    assert main(_infer(folder, demo_server.http_url, labels_only, "--no-images")) == 0
    assert "no overlays" in capsys.readouterr().out
    assert not (labels_only / "infer_images").exists()
    assert _stems(labels_only / "infer_labels", ".txt") == ["big_0", "big_1", "big_2"]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--overlay-quality", "101"])
    assert exit_.value.code == 2
    assert "--overlay-quality: JPEG quality is 1-100, got 101" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"]
)
def test_an_interrupted_run_keeps_whole_frames_and_resumes(demo_server, tmp_path, sig):  # noqa: F811
    """`cvlab infer` in a child process, signalled once its first frame is done: every frame
    with a label has its overlay, the done-list names only whole frames, SIGINT and SIGTERM
    exit 130 naming the count, and --resume finishes the rest without redoing any."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(1)
    count = 40
    for i in range(count):  # noise: slow to encode, so the run is still going when signalled
        cv2.imwrite(str(folder / f"n_{i:02d}.jpg"), rng.integers(0, 255, (540, 960, 3), np.uint8))
    out = tmp_path / "out"
    argv = [
        "infer", str(folder), "-m", MODEL, "-b", "2", "-u", demo_server.http_url,
        "--concurrency", "1", "--output_path", str(out), "--no-progress", "--writers", "1",
        "--overlay-quality", "100", "--shared-memory", "none",  # a killed client leaves no region
    ]  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-m", "cvlab", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    done = out / DONE_LIST
    while not (done.is_file() and done.stat().st_size > 0) and child.poll() is None:
        time.sleep(0.01)
    assert child.poll() is None, child.communicate()
    child.send_signal(sig)
    stdout, stderr = child.communicate(timeout=120)
    labels = set(_stems(out / "infer_labels", ".txt"))
    overlays = set(_stems(out / "infer_images", ".jpg"))
    listed = set(read_done_list(out))
    lines = done.read_text().splitlines()
    assert 0 < len(lines) < count and len(set(lines)) == len(lines)
    assert labels <= overlays  # the overlay is written before the label
    assert {line.split("\t")[0] for line in lines} == listed <= labels
    if sig != signal.SIGKILL:
        assert child.returncode == 130, stderr
        assert f"{len(lines)} frame(s) done, listed in {done}; rerun with --resume" in stderr
    else:
        assert child.returncode == -signal.SIGKILL
    before = {n: (out / "infer_labels" / f"{n}.txt").stat().st_mtime_ns for n in listed}
    again = subprocess.run(
        [sys.executable, "-m", "cvlab", *argv, "--resume"], capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"{count - len(listed)} image(s)" in again.stdout
    assert f"(+{len(listed)} done earlier)" in again.stdout
    assert set(read_done_list(out)) == {f"n_{i:02d}" for i in range(count)}
    assert len(done.read_text().splitlines()) == count
    for name, mtime in before.items():  # not redone
        assert (out / "infer_labels" / f"{name}.txt").stat().st_mtime_ns == mtime
    shutil.rmtree(folder)
    for sub in ("infer_labels", "infer_images"):  # a killed writer's temporary files are gone
        assert not [p.name for p in (out / sub).iterdir() if p.name.startswith(".")]


def test_a_class_list_the_model_does_not_match_is_refused_before_any_request(
    demo_server,  # noqa: F811
    tmp_path,
    capsys,
):
    write_test_images(tmp_path / "images", 3)
    out = tmp_path / "out"
    argv = _infer(tmp_path / "images", demo_server.http_url, out, "--class_list", "person")
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "has 3 classes" in lines[0] and "--class_list" in lines[0], lines
    assert not (out / "infer_labels").exists() and not (out / DONE_LIST).exists()


# --- issue 20: hostile input ----------------------------------------------------------------------
def _exif_jpeg(path: Path, bgr: np.ndarray, orientation: int) -> Path:
    """A real JPEG written by Pillow, tagged with EXIF ``orientation``."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(bgr[..., ::-1]).save(path, quality=95, exif=exif.tobytes())
    return path


def _boxes(out: Path, name: str) -> np.ndarray:
    rows = [
        line.split() for line in (out / "infer_labels" / f"{name}.txt").read_text().splitlines()
    ]
    return np.array([[float(v) for v in r[4:8]] for r in rows]).reshape(-1, 4)


@pytest.mark.parametrize("orientation", [3, 6])
def test_exif_orientation_one_frame_for_every_flag(demo_server, tmp_path, orientation):  # noqa: F811
    """Issue 20 item 4: a 1920x1080 JPEG tagged Orientation=3 or 6 gives the same boxes with
    full-size overlays, --no-images (a reduced decode) and --overlay-size, all in the upright
    frame (as cv2.imread shows it), and an upright overlay."""
    folder = tmp_path / "tagged"
    folder.mkdir()
    stored = np.zeros((1080, 1920, 3), np.uint8)
    for path in write_test_images(tmp_path / "src", 4):  # content the demo model fires on
        tile = cv2.resize(cv2.imread(str(path)), (960, 540))
        stored[:540, :960] = tile
        stored[540:, 960:] = tile[::-1]
    _exif_jpeg(folder / "cam.jpg", stored, orientation)
    upright = cv2.imread(str(folder / "cam.jpg"))  # OpenCV's default applies the tag
    cv2.imwrite(str(tmp_path / "ref.png"), upright)  # the upright pixels, untagged, lossless
    height, width = upright.shape[:2]
    runs = {
        "full": ["--overlay-size", "full"],
        "labels-only": ["--no-images"],
        "overlay-size": ["--overlay-size", "960x540"],
    }
    boxes = {}
    for run, extra in runs.items():
        out = tmp_path / run
        assert main(_infer(folder, demo_server.http_url, out, *extra)) == 0
        boxes[run] = _boxes(out, "cam")
        if run != "labels-only":
            overlay = cv2.imread(str(out / "infer_images" / "cam.jpg"))
            fit = min(1.0, 960 / width, 540 / height) if run == "overlay-size" else 1.0
            assert overlay.shape[:2] == (round(height * fit), round(width * fit)), run
    ref = tmp_path / "ref"
    assert main(_infer(tmp_path / "ref.png", demo_server.http_url, ref)) == 0
    assert len(boxes["full"]) > 0
    np.testing.assert_allclose(boxes["full"], _boxes(ref, "ref"), atol=0.05)
    for run in ("labels-only", "overlay-size"):  # another decode scale: close, same frame
        assert boxes[run].shape == boxes["full"].shape, run
        np.testing.assert_allclose(boxes[run], boxes["full"], atol=0.03 * max(width, height))
    assert (boxes["full"][:, [0, 2]] <= width).all() and (boxes["full"][:, [1, 3]] <= height).all()


@pytest.mark.filterwarnings("ignore")
def test_hostile_files_are_failed_frames_with_their_reason(demo_server, tmp_path, capsys):  # noqa: F811
    """Issue 20 items 5, 8, 11: an image over PIL's 178.9 MP limit, a JPEG cut short and a
    dangling symlink are each one failed frame, listed with its reason (exit 3); the other
    frames are done."""
    folder = tmp_path / "hostile"
    good = write_test_images(folder, 3)
    noise = np.random.default_rng(0).integers(0, 255, (540, 960, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", noise)[1].tobytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    bomb_jpeg(folder / "huge.jpg", 20000, 10000)
    (folder / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    out = tmp_path / "out"
    assert main(_infer(folder, demo_server.http_url, out)) == 3
    err = capsys.readouterr().err
    reasons = {
        "cut": "cannot decode image (truncated",
        "huge": "too large to decode",
        "gone": "broken symbolic link",
    }
    failed = {
        name: why
        for name, _, why in (
            split_line(line) for line in (out / FAILED_LIST).read_text().splitlines(True)
        )
    }
    assert sorted(failed) == sorted(reasons)
    for name, reason in reasons.items():
        assert reason in failed[name] and reason in err, (name, failed[name])
    assert sorted(read_done_list(out)) == sorted(p.stem for p in good)


def test_resume_matches_the_image_not_its_output_name(demo_server, tmp_path, capsys):  # noqa: F811
    """Issue 20 item 11: dA/cam.jpg done does not make dB/cam.jpg done."""
    for sub in ("dA", "dB"):
        write_test_images(tmp_path / sub, 1)
    out = tmp_path / "out"
    assert main(_infer(tmp_path / "dA", demo_server.http_url, out)) == 0
    assert main(_infer(tmp_path / "dB", demo_server.http_url, out, "--resume")) == 0
    assert "1 frame(s) done, listed" in capsys.readouterr().out  # done, not skipped
    assert read_done_list(out) == {"frame_000": str(tmp_path / "dB" / "frame_000.jpg")}
    assert main(_infer(tmp_path / "dB", demo_server.http_url, out, "--resume")) == 0
    assert "(+1 done earlier)" in capsys.readouterr().out


def test_names_with_tabs_and_newlines_keep_the_lists_whole(demo_server, tmp_path, capsys):  # noqa: F811
    """Issue 20 item 11: file names holding a tab, a newline or a backslash are escaped in the
    done and failed lists, read back whole, and --resume finds them."""
    folder = tmp_path / "odd"
    folder.mkdir()
    sources = write_test_images(tmp_path / "src", 3)
    names = ["tab\there", "new\nline", "back\\slash"]
    for src, name in zip(sources, names, strict=True):
        src.rename(folder / f"{name}.jpg")
    (folder / "cut\tshort.jpg").write_bytes(b"\xff\xd8\xff")
    out = tmp_path / "out"
    assert main(_infer(folder, demo_server.http_url, out)) == 3
    assert read_done_list(out) == {n: str(folder / f"{n}.jpg") for n in names}
    lines = (out / FAILED_LIST).read_text().splitlines(True)
    assert [split_line(line)[:2] for line in lines] == [
        ["cut\tshort", str(folder / "cut\tshort.jpg")]
    ]
    capsys.readouterr()
    assert main(_infer(folder, demo_server.http_url, out, "--resume")) == 3
    assert "(+3 done earlier)" in capsys.readouterr().out


def test_a_second_run_into_a_busy_output_folder_is_refused(demo_server, tmp_path, capsys):  # noqa: F811
    """Issue 20 item 9: while one process holds the output folder, a second `cvlab infer` into it
    stops in one line (exit 2) and touches nothing; the done-list never holds a NUL byte."""
    folder = tmp_path / "images"
    write_test_images(folder, 4)
    out = tmp_path / "out"
    assert main(_infer(folder, demo_server.http_url, out)) == 0
    before = (out / DONE_LIST).read_bytes()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from cvlab.fileio import lock_directory\n"
         f"with lock_directory({str(out)!r}, 'cvlab infer'):\n"
         "    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main(_infer(folder, demo_server.http_url, out)) == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"cvlab infer: error: {out} is in use by another cvlab infer: "
            "wait for it to finish or write elsewhere"
        )
        assert (out / DONE_LIST).read_bytes() == before
    finally:
        holder.communicate("", timeout=30)
    assert main(_infer(folder, demo_server.http_url, out, "--resume")) == 0
    assert b"\0" not in (out / DONE_LIST).read_bytes()


def test_labels_are_byte_for_byte_those_of_a_plain_reference(demo_server, tmp_path):  # noqa: F811
    """Issue 23: the client made faster writes the same labels, byte for byte, as a plain
    rendering of the path (the same decode, a cast-and-scale tensor, the model run directly with
    onnxruntime, the same clustering, write_kitti), for small, 720p and 1080p frames."""
    import onnxruntime as ort
    from support.triton import INPUT_SIZE, demo_onnx_path

    from cvlab.formats.kitti import write_kitti
    from cvlab.images import load_image_for_model
    from cvlab.triton.pipeline import make_postprocessor

    folder = tmp_path / "images"
    write_test_images(folder, 4)
    rng = np.random.default_rng(5)
    for w, h in ((1280, 720), (1920, 1080)):
        frame = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), np.uint8), (9, 9), 3)
        cv2.rectangle(frame, (w // 3, h // 4), (w // 3 + w // 10, h - h // 8), (250, 250, 250), -1)
        cv2.imwrite(str(folder / f"big_{w}.jpg"), frame)
    out = tmp_path / "out"
    argv = _infer(folder, demo_server.http_url, out, "--no-images", "--concurrency", "1")
    argv[argv.index("-b") + 1] = "1"  # one frame per request, as the reference runs the model
    assert main(argv) == 0
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as the server's python backend (CVLAB_ORT_THREADS)
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(demo_onnx_path()), options)
    names = [o.name for o in session.get_outputs()]
    post, _ = make_postprocessor(INPUT_SIZE, PEOPLENET_RGB_CONFIG)
    reference = tmp_path / "reference"
    reference.mkdir()
    for path in sorted(folder.iterdir()):
        bgr, size = load_image_for_model(path, INPUT_SIZE, bgr=True)
        if (bgr.shape[1], bgr.shape[0]) != INPUT_SIZE:
            bgr = cv2.resize(bgr, INPUT_SIZE, interpolation=cv2.INTER_LINEAR)
        tensor = bgr[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255)
        outputs = dict(zip(names, session.run(names, {"input_1": tensor[None]}), strict=True))
        (detections,) = post.batch(outputs, [size], [str(path)])
        write_kitti(reference / f"{path.stem}.txt", detections, with_confidence=True)
    written = sorted((out / "infer_labels").iterdir())
    assert [p.name for p in written] == sorted(p.name for p in reference.iterdir())
    assert any(p.stat().st_size for p in written)  # some frames have boxes
    for label in written:
        assert label.read_bytes() == (reference / label.name).read_bytes(), label.name


def test_overlays_fit_the_model_input_by_default_with_the_labels_of_full_size_ones(
    demo_server,  # noqa: F811
    tmp_path,
):
    """Issue 23: by default an overlay fits inside the model input (320x192 here) and its
    labels are those of `--overlay-size full`, byte for byte, for frames at 6x the model size
    (which a smaller given --overlay-size lets decode at a reduced scale: other labels)."""
    folder = tmp_path / "images"
    write_test_images(tmp_path / "src", 4)
    folder.mkdir()
    for i, path in enumerate(sorted((tmp_path / "src").iterdir())):
        tile = cv2.resize(cv2.imread(str(path)), (960, 540), interpolation=cv2.INTER_NEAREST)
        frame = np.tile(tile, (2, 2, 1))[: 1080 - 360 * (i % 2), : 1920 - 640 * (i % 2)]
        cv2.imwrite(str(folder / f"cam_{i}.jpg"), frame)  # 1920x1080 and 1280x720
    labels, overlays = {}, {}
    for run, extra in {
        "default": [], "full": ["--overlay-size", "full"], "given": ["--overlay-size", "320x192"],
    }.items():  # fmt: skip
        out = tmp_path / run
        assert main(_infer(folder, demo_server.http_url, out, *extra)) == 0
        labels[run] = {p.name: p.read_bytes() for p in (out / "infer_labels").iterdir()}
        overlays[run] = {
            p.stem: cv2.imread(str(p)).shape[:2] for p in (out / "infer_images").iterdir()
        }
    assert len(labels["default"]) == 4 and any(labels["default"].values())
    assert labels["default"] == labels["full"]
    assert labels["given"] != labels["full"]  # the test can tell the two decodes apart
    assert overlays["full"] == {
        f"cam_{i}": ((1080, 720)[i % 2], (1920, 1280)[i % 2]) for i in range(4)
    }
    assert overlays["default"] == overlays["given"] == dict.fromkeys(overlays["full"], (180, 320))


def test_frames_fitted_as_soon_as_decoded_give_the_overlays_fitted_at_the_end(
    demo_server,  # noqa: F811
    tmp_path,
):
    """Issue 23: the reading threads fit each kept frame to the overlay's size right after its
    decode; every overlay is byte for byte the one save_overlay fits and draws from the full
    frame read again (bilinear at 1280x720 -> 320x180, area averaging at 1920x1080)."""
    folder = tmp_path / "images"
    write_test_images(tmp_path / "src", 4)
    folder.mkdir()
    paths = []
    for i, path in enumerate(sorted((tmp_path / "src").iterdir())):
        size = ((1280, 720), (1920, 1080))[i % 2]
        paths.append(folder / f"cam_{i}.jpg")
        cv2.imwrite(str(paths[-1]), cv2.resize(cv2.imread(str(path)), size))
    out = tmp_path / "out"
    summary = run_inference(
        [str(p) for p in paths], MODEL, demo_server.http_url, batch_size=2, output_path=out,
        postprocessing_config=PEOPLENET_RGB_CONFIG, progress=False, overlay_size="model",
    )  # fmt: skip
    assert sum(len(d) for d in summary.detections) > 0
    config = load_clustering_config(PEOPLENET_RGB_CONFIG)
    for dets, path in zip(summary.detections, paths, strict=True):
        ref = save_overlay(
            tmp_path / "ref" / f"{path.stem}.jpg", load_image(path), dets,
            colors=colors_from_config(config), linewidth=config.linewidth, quality=75,
            max_size=summary.input_size,
        )  # fmt: skip
        got = out / "infer_images" / f"{path.stem}.jpg"
        assert got.read_bytes() == ref.read_bytes(), path
