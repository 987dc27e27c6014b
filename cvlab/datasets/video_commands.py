"""``cvlab video label|standin``: label the real video with the teachers, rebuild the RGB stand-in (rows of :data:`cvlab.cli.VERBS`).

    cvlab video label --output runs/vtest_labels            # teachers -> KITTI + TFRecords
    cvlab video standin --labels runs/vtest_labels --install  # train, export, ship the weights

``cvlab video standin`` labels the video first when ``--labels`` holds no labelled set, so one
command rebuilds the shipped stand-in from the video.

Both need the teachers only to (re)build labels (``make teachers``); heavy imports happen
inside the commands.
"""

from __future__ import annotations

import argparse
import time

from cvlab.cli import positive_int


def label_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab video label`` options."""
    p.add_argument("--output", default="runs/vtest_labels", help="dataset folder to write")
    p.add_argument(
        "--video",
        default=None,
        help="a copy of vtest.avi (default: fetched once from Debian's opencv-doc package)",
    )
    p.add_argument("--every", type=positive_int, default=2, help="write every N-th training frame")
    p.add_argument(
        "--synthetic-frames",
        type=int,
        default=120,
        help="synthetic daylight frames added for bags (the video has none)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def label(args: argparse.Namespace) -> int:
    """Label frames 0-599 of vtest.avi and write the stand-in's training set."""
    from cvlab.datasets.video_labels import label_video

    if args.synthetic_frames < 0:
        raise ValueError(f"--synthetic-frames must be 0 or more, got {args.synthetic_frames}")
    report = label_video(
        args.output,
        args.video,
        every=args.every,
        synthetic_frames=args.synthetic_frames,
        progress=not args.no_progress,
    )
    counts = report.counts
    print(
        f"labelled {counts['frames']} training frames of vtest.avi (600-794 held out): "
        f"teacher {counts['teacher_boxes']} person boxes -> {counts['person_boxes']} after "
        f"cleaning ({counts['dropped_flicker_boxes']} flicker boxes dropped, "
        f"{counts['filled_gap_boxes']} gap boxes filled), {counts['face_boxes']} faces"
    )
    objects = ", ".join(f"{n} {k}" for k, n in sorted(report.objects.items()))
    print(
        f"wrote {report.frames} video + {report.synthetic_frames} synthetic frames ({objects}) "
        f"to {report.root} in {report.seconds:.0f} s"
    )
    return 0


def standin_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab video standin`` options."""
    from cvlab.train.standin import STANDIN_EPOCHS

    p.add_argument(
        "--labels",
        default="runs/vtest_labels",
        help="folder `video label` wrote (labelled first, with its defaults, when it is not)",
    )
    p.add_argument("--video", default=None, help="a copy of vtest.avi (as for `video label`)")
    p.add_argument("--output", default="runs/rgb_standin", help="training folder")
    p.add_argument("--epochs", type=positive_int, default=STANDIN_EPOCHS)
    p.add_argument(
        "--install",
        action="store_true",
        help="copy the weights, ONNX, spec and provenance into the package (what ships)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def standin(args: argparse.Namespace) -> int:
    """Train the RGB stand-in on a labelled video set; print where it went and how long."""
    from pathlib import Path

    from cvlab.datasets.video_labels import RECORD_FILE, label_video
    from cvlab.train.standin import SHIPPED_DIR, train_standin

    started = time.perf_counter()
    if not (Path(args.labels) / RECORD_FILE).is_file():
        report = label_video(args.labels, args.video, progress=not args.no_progress)
        print(f"labelled the video into {report.root} in {report.seconds:.0f} s")
    build = train_standin(
        args.labels,
        args.output,
        epochs=args.epochs,
        install=args.install,
        progress=not args.no_progress,
    )
    validation = ", ".join(f"{k} {v:.3f}" for k, v in build.provenance["validation"].items())
    print(f"validation (fold 0 of frames 0-599): {validation}")
    print(f"wrote {build.weights} and {build.onnx}")
    if args.install:
        print(f"installed into {SHIPPED_DIR}")
    print(f"rebuilt the RGB stand-in in {time.perf_counter() - started:.0f} s")
    return 0
