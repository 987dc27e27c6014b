"""``cvlab bench datasets``: synthetic generation, conversion and TFRecord throughput; header reads.

Prints images/s for: synthetic frames, FLIR -> KITTI + resized JPEG conversion, a resumed run
(nothing to redo), TFRecord writing, and the cost of reading an image size from the header
(PIL, lazy) against decoding the whole image (OpenCV).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    """``cvlab bench datasets`` options."""
    parser.add_argument("--num-images", type=int, default=200)
    parser.add_argument("--layout", choices=["v1", "v2"], default="v1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", help="work directory (default: a temporary one)")


def bench(args: argparse.Namespace) -> int:
    import cv2
    import pandas as pd
    import tensorflow as tf  # noqa: F401  (import cost kept out of the timings)

    from cvlab.datasets.prepare import prepare_flir_dataset
    from cvlab.datasets.synthetic import generate_synthetic_flir
    from cvlab.formats.tfrecords import write_tfrecords
    from cvlab.images import image_size

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.output or tmp)
        n = args.num_images
        rows = []
        t = time.perf_counter()
        src = generate_synthetic_flir(work / "src", args.layout, n, val_images=0, video_images=0)
        rows.append(("synthetic frames (write JPEG+JSON)", n, time.perf_counter() - t))

        paths = sorted(src.rglob("*.jp*g"))
        t = time.perf_counter()
        sizes = [image_size(p) for p in paths]
        header_s = time.perf_counter() - t
        t = time.perf_counter()
        decoded = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape[:2] for p in paths]
        decode_s = time.perf_counter() - t
        assert [(w, h) for w, h in sizes] == [(w, h) for h, w in decoded]
        rows.append(("image size from header (PIL lazy)", len(paths), header_s))
        rows.append(("image size by full decode (cv2)", len(paths), decode_s))

        t = time.perf_counter()
        report = prepare_flir_dataset(src, work / "out", workers=args.workers, progress=False)
        total = time.perf_counter() - t
        t = time.perf_counter()
        write_tfrecords(work / "out", work / "tfr_only" / "flir", progress=False)
        tfr_s = time.perf_counter() - t
        rows.append(("convert: resize + KITTI (+ TFRecords)", report.images, total))
        rows.append(("convert: resize + KITTI only", report.images, max(total - tfr_s, 1e-9)))
        rows.append(("TFRecord writing", report.images, tfr_s))
        t = time.perf_counter()
        again = prepare_flir_dataset(src, work / "out", workers=args.workers, progress=False)
        rows.append(
            ("resumed run (nothing to redo)", again.images_resumed, time.perf_counter() - t)
        )

    df = pd.DataFrame(rows, columns=["step", "images", "seconds"])
    df["images/s"] = [_rate(i, s) for i, s in zip(df.images, df.seconds, strict=True)]
    df["ms/image"] = 1000 * df.seconds / df.images.clip(lower=1)
    pd.set_option("display.width", 120)
    print(df.round(3).to_string(index=False))
    print(f"header read is {decode_s / max(header_s, 1e-9):.1f}x faster than decoding")
    return 0
