"""Atomic writes: the new content or the old one, never half a file, no temporary left behind."""

import pytest

from cvlab.fileio import atomic_path, atomic_write_bytes, atomic_write_text


def test_writes_create_folders_and_replace(tmp_path):
    target = tmp_path / "a" / "b" / "model.onnx"
    assert atomic_write_bytes(target, b"v1") == target
    atomic_write_bytes(target, b"v2")
    assert target.read_bytes() == b"v2"
    assert atomic_write_text(tmp_path / "t.txt", "hi").read_text() == "hi"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.onnx"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="writer crashed"), atomic_path(target) as tmp:
        assert tmp.suffix == ".csv" and tmp.parent == tmp_path
        tmp.write_text("half")
        raise RuntimeError("writer crashed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_writer_that_never_creates_the_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "x.keras"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_write_image_rgb_bgr_grey_and_16bit(tmp_path):
    import cv2
    import numpy as np

    from cvlab.fileio import atomic_write_image

    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red
    path = atomic_write_image(tmp_path / "out" / "red.png", rgb)
    assert path == tmp_path / "out" / "red.png"
    assert cv2.imread(str(path))[0, 0].tolist() == [0, 0, 200]  # BGR on disk: red
    atomic_write_image(tmp_path / "blue.png", rgb, bgr=True)
    assert cv2.imread(str(tmp_path / "blue.png"))[0, 0].tolist() == [200, 0, 0]
    rgba = np.dstack([rgb, np.full((4, 6), 255, np.uint8)])
    atomic_write_image(tmp_path / "rgba.png", rgba)
    assert cv2.imread(str(tmp_path / "rgba.png"), cv2.IMREAD_UNCHANGED)[0, 0].tolist() == [
        0,
        0,
        200,
        255,
    ]
    deep = np.full((3, 5), 40000, np.uint16)
    atomic_write_image(tmp_path / "deep.png", deep)
    np.testing.assert_array_equal(
        cv2.imread(str(tmp_path / "deep.png"), cv2.IMREAD_UNCHANGED), deep
    )
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8)
    atomic_write_image(tmp_path / "g.tiff", grey)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "g.tiff"), cv2.IMREAD_UNCHANGED), grey)


def test_write_image_bytes_are_those_of_imwrite(tmp_path):
    import cv2
    import numpy as np

    from cvlab.fileio import atomic_write_image

    bgr = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    for quality, params in ((None, []), (80, [cv2.IMWRITE_JPEG_QUALITY, 80])):
        assert cv2.imwrite(str(tmp_path / "ref.jpg"), bgr, params)
        atomic_write_image(tmp_path / "a.jpg", bgr, bgr=True, quality=quality)
        assert (tmp_path / "a.jpg").read_bytes() == (tmp_path / "ref.jpg").read_bytes()
    atomic_write_image(tmp_path / "p.jpg", bgr, bgr=True, params=(cv2.IMWRITE_JPEG_QUALITY, 80))
    assert (tmp_path / "p.jpg").read_bytes() == (tmp_path / "ref.jpg").read_bytes()


def test_write_image_unknown_suffix_is_an_error_and_leaves_nothing(tmp_path):
    import numpy as np

    from cvlab.fileio import atomic_write_image

    with pytest.raises(OSError, match=r"a\.xyz: OpenCV could not encode"):
        atomic_write_image(tmp_path / "a.xyz", np.zeros((2, 2), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_save_figure_and_notebook(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nbformat

    from cvlab.fileio import atomic_save_figure, atomic_write_notebook

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    png = atomic_save_figure(tmp_path / "figs" / "f.png", fig, dpi=50)
    plt.close(fig)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    out = atomic_write_notebook(tmp_path / "nb" / "run.ipynb", nb)
    assert nbformat.read(out, as_version=4).cells[0].source == "1 + 1"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["f.png", "run.ipynb"]


def test_list_images_any_case_sorted_files_only(tmp_path):
    from cvlab.fileio import IMAGE_SUFFIXES, list_images

    for name in ["b.JPG", "a.png", "c.jpeg", "d.txt", "e.PnG", "f.gif", "g.bmp"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.jpg").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG", "c.jpeg", "e.PnG"]
    assert set(IMAGE_SUFFIXES) == {".jpg", ".jpeg", ".png"}
    assert [p.name for p in list_images(tmp_path, (".JPG", ".bmp"))] == ["b.JPG", "g.bmp"]
    assert list_images(tmp_path / "sub.jpg") == []
    with pytest.raises(NotADirectoryError):
        list_images(tmp_path / "a.png")


def test_concurrent_writes_to_one_file_never_collide(tmp_path):
    """Temporary names are unique per write (process, thread, sequence): 8 threads replacing
    the same file 50 times each all succeed, the file holds one whole write, nothing is left."""
    from concurrent.futures import ThreadPoolExecutor

    target = tmp_path / "label.txt"

    def write(worker: int) -> None:
        for i in range(50):
            atomic_write_text(target, f"{worker} {i}\n" * 100)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    lines = target.read_text().splitlines()
    assert len(lines) == 100 and len(set(lines)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["label.txt"]


def test_atomic_directory_replaces_a_folder_only_when_complete(tmp_path):
    """The new folder takes the old one's place at the end; a failure (Ctrl-C here) leaves the
    old folder byte for byte, and no temporary folder is left either way."""
    from cvlab.fileio import atomic_directory

    target = tmp_path / "set"
    with atomic_directory(target) as new:
        assert new.parent == tmp_path and new.name.startswith(".set.") and not list(new.iterdir())
        (new / "a").write_text("1")
        (new / "b").write_text("1")
        assert not target.exists()  # nothing visible before the block succeeds
    assert sorted(p.name for p in target.iterdir()) == ["a", "b"]
    with pytest.raises(KeyboardInterrupt), atomic_directory(target) as new:
        (new / "c").write_text("2")
        raise KeyboardInterrupt
    assert {p.name: p.read_text() for p in target.iterdir()} == {"a": "1", "b": "1"}
    target.chmod(0o750)
    with atomic_directory(target) as new:
        (new / "c").write_text("2")
    assert [p.name for p in target.iterdir()] == ["c"]  # replaced as a whole: a and b are gone
    assert target.stat().st_mode & 0o777 == 0o750  # the folder's permissions are kept
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


def test_atomic_directory_puts_the_old_folder_back_when_the_swap_fails(tmp_path, monkeypatch):
    """Injected fault: the second rename of the swap (new folder into place) fails, after the
    old folder was moved aside; the old folder is put back and the new one removed."""
    import os

    from cvlab import fileio

    target = tmp_path / "set"
    target.mkdir()
    (target / "a").write_bytes(b"old")
    real_rename, calls = os.rename, []

    def failing_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError("injected: rename failed")
        real_rename(src, dst)

    monkeypatch.setattr(fileio.os, "rename", failing_rename)
    with pytest.raises(OSError, match="injected"), fileio.atomic_directory(target) as new:
        (new / "a").write_bytes(b"new")
    assert calls[0][0] == target and calls[1][1] == target  # aside, then (failed) into place
    assert [p.name for p in tmp_path.iterdir()] == ["set"]
    assert (target / "a").read_bytes() == b"old"


def test_atomic_directory_keeps_a_symbolic_link(tmp_path):
    """A folder kept on another disk and linked in: the folder it points to is replaced."""
    from cvlab.fileio import atomic_directory

    elsewhere = tmp_path / "disk2" / "set"
    elsewhere.mkdir(parents=True)
    (elsewhere / "old").write_text("x")
    link = tmp_path / "work" / "set"
    link.parent.mkdir()
    link.symlink_to(elsewhere, target_is_directory=True)
    with atomic_directory(link) as new:
        assert new.parent == elsewhere.parent
        (new / "new").write_text("y")
    assert link.is_symlink() and [p.name for p in link.iterdir()] == ["new"]
    assert [p.name for p in elsewhere.parent.iterdir()] == ["set"]


_KILLED_WRITER = """
import os, signal, sys
from cvlab import fileio
target, when = sys.argv[1], sys.argv[2]
real_rename, renames = os.rename, []

def rename(src, dst):  # the fault: SIGKILL between the two renames of the swap
    renames.append(src)
    if when == "between-renames" and len(renames) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    real_rename(src, dst)

os.rename = rename
with fileio.atomic_directory(target) as tmp:
    (tmp / "shard-0").write_text("new")
    if when == "while-filling":
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("when", ["while-filling", "between-renames"])
def test_a_killed_writers_leftovers_are_cleaned_by_the_next_one(tmp_path, when):
    """A real writer process SIGKILLed while filling the new folder (its .tmp stays: the
    previous set is kept) or between the two renames (the previous set is aside as .old, the
    complete new one still .tmp, the target missing: the new set takes its place): the next
    atomic_directory of that path cleans up first, so a failing next write changes nothing."""
    import subprocess
    import sys

    from cvlab.fileio import atomic_directory, recover_directory

    target = tmp_path / "tfrecords"
    target.mkdir()
    (target / "shard-0").write_text("complete")
    killed = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(target), when])
    assert killed.returncode == -9
    leftovers = sorted(p.suffix for p in tmp_path.iterdir() if p.name.startswith("."))
    assert leftovers == ([".tmp"] if when == "while-filling" else [".old", ".tmp"])
    assert target.exists() == (when == "while-filling")
    with pytest.raises(InterruptedError), atomic_directory(target):  # recovers, then fails
        raise InterruptedError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tfrecords"]
    expected = "complete" if when == "while-filling" else "new"
    assert (target / "shard-0").read_text() == expected
    assert recover_directory(target) == []  # nothing left to do


def test_safe_path_refuses_names_that_leave_the_root(tmp_path):
    """Issue 20 item 2: the one check on names from remote or dataset content."""
    from cvlab.fileio import UnsafePathError, safe_path

    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "out").symlink_to(tmp_path)  # a link already there, pointing out
    assert safe_path(root, "sub/a.jpg") == root / "sub" / "a.jpg"
    assert safe_path(root, "out/x", links=False) == root / "out" / "x"  # read: on its face
    for bad in ("../x", "a/../../x", "a\\..\\..\\x", "/etc/x", "\\x", "C:x", "a//b", "", "a\0b"):
        with pytest.raises(UnsafePathError):
            safe_path(root, bad)
        with pytest.raises(UnsafePathError):
            safe_path(root, bad, links=False)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        safe_path(root, "out/x")
