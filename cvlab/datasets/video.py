"""The real camera video behind the RGB stand-in: OpenCV's ``vtest.avi``, fetched once, split by time.

``vtest.avi`` (768x576, 795 frames, 10 fps: a fixed camera over a campus plaza, 2-12 people
walking, some in pairs, some partly hidden) ships in Debian's ``opencv-doc`` package with three
real photos of people (``messi5.jpg``, ``basketball1.png``, ``basketball2.png``). Its licence is
OpenCV's (the package's ``copyright`` file, stanza ``Files: *``: Apache-2.0 AND BSD-3-Clause); a
copy of that file is kept beside the cached video.

The split is by time, never by random frames (neighbouring frames are near copies): frames
0-599 may be labelled, trained on and validated on; frames 600-794 are held out, never trained,
tuned or thresholded on, and only scored (:data:`HELDOUT_FRAMES`). Every function that hands
frames to training goes through :func:`training_indices`, which refuses a held-out index.

Example:
    >>> split_of(599), split_of(600)
    ('train', 'heldout')
    >>> training_indices(range(0, 600, 150))
    [0, 150, 300, 450]
    >>> training_indices([598, 600])
    Traceback (most recent call last):
    ...
    cvlab.datasets.video.HeldOutFrameError: frames [600] are held out (600-794): never trained on
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from cvlab.errors import CvlabError
from cvlab.fileio import atomic_write_bytes

VIDEO_NAME = "vtest.avi"
#: Frames of ``vtest.avi`` (768x576 at 10 fps).
NUM_FRAMES = 795
FRAME_SIZE = (768, 576)
FPS = 10.0
#: Frames that may be labelled and trained on (fold 0 of their TFRecords validates).
TRAIN_FRAMES = range(0, 600)
#: Frames never trained, tuned or thresholded on: only scored (``cvlab bench standin``).
HELDOUT_FRAMES = range(600, NUM_FRAMES)
#: The Debian package that ships the video and the photos, and their folder inside it.
DEBIAN_PACKAGE = "opencv-doc"
PACKAGE_DATA_DIR = "usr/share/doc/opencv-doc/examples/data"
PACKAGE_COPYRIGHT = "usr/share/doc/opencv-doc/copyright"
#: Real photos of people from the same folder: out of domain, never trained or tuned on.
REAL_PHOTOS = ("messi5.jpg", "basketball1.png", "basketball2.png")


class HeldOutFrameError(CvlabError):
    """A held-out frame was about to reach training."""


class VideoUnavailableError(CvlabError):
    """Neither a given ``--video`` nor Debian's package could provide ``vtest.avi``."""


def split_of(index: int) -> str:
    """``"train"`` or ``"heldout"`` for a frame index of ``vtest.avi``."""
    if not 0 <= index < NUM_FRAMES:
        raise ValueError(f"frame {index} is outside vtest.avi (0-{NUM_FRAMES - 1})")
    return "train" if index in TRAIN_FRAMES else "heldout"


def training_indices(indices: Iterable[int]) -> list[int]:
    """``indices`` as a list, refused (:class:`HeldOutFrameError`) if any is held out."""
    indices = [int(i) for i in indices]
    held = [i for i in indices if split_of(i) == "heldout"]
    if held:
        raise HeldOutFrameError(
            f"frames {held[:5]}{' ...' if len(held) > 5 else ''} are held out "
            f"({HELDOUT_FRAMES.start}-{HELDOUT_FRAMES.stop - 1}): never trained on"
        )
    return indices


def cache_dir() -> Path:
    """Where the video, photos and copyright file are cached: ``$CVLAB_VIDEO_CACHE`` or
    ``~/.cache/cvlab/video``."""
    override = os.environ.get("CVLAB_VIDEO_CACHE")
    if override:
        return Path(override).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cvlab" / "video"


def _extract_package(target: Path) -> None:
    """``apt-get download opencv-doc`` into a temporary folder, then keep the video, the photos
    and the copyright file in ``target`` (no root needed)."""
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise VideoUnavailableError(
            f"{VIDEO_NAME}: apt-get/dpkg-deb not found to fetch Debian's {DEBIAN_PACKAGE!r} "
            f"package; pass --video PATH to a copy of {VIDEO_NAME}"
        )
    import sys

    print(
        f"fetching {VIDEO_NAME} once from Debian's {DEBIAN_PACKAGE} package (~95 MB) into {target}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="cvlab-opencv-doc-") as tmp:

        def download() -> subprocess.CompletedProcess:
            return subprocess.run(
                ["apt-get", "download", DEBIAN_PACKAGE],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=900,
            )

        done = download()
        if done.returncode != 0 and os.geteuid() == 0:  # a fresh machine: no package lists yet
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=900)
            done = download()
        debs = sorted(Path(tmp).glob(f"{DEBIAN_PACKAGE}_*.deb"))
        if done.returncode != 0 or not debs:
            reason = (done.stderr or done.stdout).strip().splitlines()
            raise VideoUnavailableError(
                f"{VIDEO_NAME}: 'apt-get download {DEBIAN_PACKAGE}' failed "
                f"({reason[-1] if reason else f'exit {done.returncode}'}); run 'apt-get update' "
                f"or pass --video PATH to a copy of {VIDEO_NAME}"
            )
        unpacked = Path(tmp) / "x"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True, timeout=600)
        data = unpacked / PACKAGE_DATA_DIR
        atomic_write_bytes(target / "copyright", (unpacked / PACKAGE_COPYRIGHT).read_bytes())
        for name in (*REAL_PHOTOS, VIDEO_NAME):  # the video last: its presence means complete
            atomic_write_bytes(target / name, (data / name).read_bytes())


def fetch_video(video: str | os.PathLike[str] | None = None) -> Path:
    """The path of ``vtest.avi``: ``video`` when given (checked), else the cached copy, fetched
    from Debian's ``opencv-doc`` package on first use (:func:`cache_dir`)."""
    if video is not None:
        path = Path(video).expanduser()
        if not path.is_file():
            raise VideoUnavailableError(f"{path}: no such video file")
        return path
    target = cache_dir()
    path = target / VIDEO_NAME
    if not path.is_file():
        _extract_package(target)
    return path


def real_photos(video: str | os.PathLike[str] | None = None) -> list[Path]:
    """The package's real photos of people (:data:`REAL_PHOTOS`), beside the cached video (or a
    given ``video``'s folder when they are there); only those present are returned."""
    folder = fetch_video(video).parent
    return [folder / name for name in REAL_PHOTOS if (folder / name).is_file()]


def read_frames(
    video: str | os.PathLike[str], indices: Iterable[int] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, RGB uint8 frame)`` for ``indices`` (all frames when None), in video order."""
    import cv2

    wanted = None if indices is None else set(int(i) for i in indices)
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise VideoUnavailableError(f"{video}: OpenCV cannot open this video")
    try:
        index = 0
        while wanted is None or (wanted and index <= max(wanted)):
            ok = capture.grab()
            if not ok:
                break
            if wanted is None or index in wanted:
                ok, bgr = capture.retrieve()
                if not ok:
                    raise VideoUnavailableError(f"{video}: frame {index} cannot be decoded")
                yield index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()


def frame_name(index: int) -> str:
    """The file stem of a frame: ``vtest_000123``."""
    return f"vtest_{int(index):06d}"


#: Person boxes on held-out frames, checked by eye (every 5th frame of 600-794).
HELDOUT_TRUTH_NAME = "video/vtest_heldout_people.csv"


def heldout_truth() -> dict[int, np.ndarray]:
    """The eye-checked person boxes of the scored held-out frames: ``{frame: (N, 4) xyxy}``
    (a frame with no one in it maps to an empty array). The file is
    ``cvlab/resources/video/vtest_heldout_people.csv`` (``frame,x1,y1,x2,y2``; ``#`` comments;
    a frame listed with empty coordinates has no person)."""
    from cvlab.resources import resource_path

    truth: dict[int, list[list[float]]] = {}
    path = resource_path(HELDOUT_TRUTH_NAME)
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("frame"):
            continue
        fields = [f.strip() for f in line.split(",")]
        frame = int(fields[0])
        if split_of(frame) != "heldout":
            raise ValueError(f"{path}:{number}: frame {frame} is not a held-out frame")
        boxes = truth.setdefault(frame, [])
        if any(fields[1:]):
            boxes.append([float(v) for v in fields[1:5]])
    return {f: np.array(b, np.float64).reshape(-1, 4) for f, b in sorted(truth.items())}
