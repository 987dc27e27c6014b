"""``cvlab flir synth|prepare|stats``: the FLIR data steps on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from cvlab.detectnet import PEOPLENET_INPUT_SIZE


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 960x544, got {text!r}") from None
    return w, h


def _synth(args: argparse.Namespace) -> int:
    from cvlab.datasets.synthetic import generate_synthetic_flir

    root = generate_synthetic_flir(
        args.output, args.layout, args.num_images, args.seed, args.size, progress=True
    )
    print(f"synthetic FLIR {args.layout} dataset: {root}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from cvlab.datasets.prepare import prepare_flir_dataset

    report = prepare_flir_dataset(
        args.source,
        args.output,
        classes=args.classes,
        output_size=args.size,
        val_split=args.val_split,
        num_shards=args.num_shards,
        seed=args.seed,
        workers=args.workers,
        keep_background=args.keep_background,
        image_type=args.image_type,
        splits=None if args.splits == "all" else args.splits.split(","),
    )
    print(report.summary())
    for line in report.unreadable_images[:20]:
        print(f"  unreadable: {line}")
    for name, reason in report.skipped_images[:20]:
        print(f"  skipped: {name}: {reason}")
    print(f"TAO dataset_convert spec: {report.spec_path}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from cvlab.datasets import stats
    from cvlab.formats.tfrecords import read_tfrecords

    out = Path(args.output)
    df = (
        read_tfrecords(out / "tfrecords")
        if args.tfrecords
        else stats.labels_dataframe(out / "labels")
    )
    print(stats.summarize(df).to_string())
    print()
    print(stats.boxes_per_image(df).to_string())
    print()
    print(stats.box_size_histogram(df).to_string())
    if args.plot:
        stats.plot_dataset_stats(df, title=str(out)).savefig(args.plot, dpi=100)
        print(f"plot: {args.plot}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cvlab flir ...`` (cheap: heavy imports happen inside the commands)."""
    flir = subparsers.add_parser(
        "flir", help="FLIR thermal data: synthetic set, KITTI/TFRecords, stats"
    )
    sub = flir.add_subparsers(dest="flir_command", metavar="STEP", required=True)

    synth = sub.add_parser("synth", help="write a synthetic FLIR dataset in the v1 or v2 layout")
    synth.add_argument("--layout", choices=["v1", "v2"], default="v1")
    synth.add_argument("--num-images", type=int, default=200, help="frames in the train split")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--size", type=_size, default=(640, 512), help="WIDTHxHEIGHT")
    synth.add_argument("--output", required=True, help="dataset root to create")
    synth.set_defaults(func=_synth)

    prep = sub.add_parser("prepare", help="FLIR (v1/v2) -> KITTI labels, resized images, TFRecords")
    prep.add_argument("source", help="FLIR dataset root (or one split folder)")
    prep.add_argument("output", help="output directory")
    prep.add_argument(
        "--classes", default="person", help="comma-separated, e.g. person,car,bicycle"
    )
    prep.add_argument("--size", type=_size, default=PEOPLENET_INPUT_SIZE, help="output WIDTHxHEIGHT")
    prep.add_argument("--val-split", type=float, default=10, help="percent in fold 0")
    prep.add_argument("--num-shards", type=int, default=10)
    prep.add_argument("--seed", type=int, default=42)
    prep.add_argument("--workers", type=int, default=2)
    prep.add_argument("--keep-background", action="store_true", help="other classes -> dontcare")
    prep.add_argument("--image-type", choices=["8bit", "16bit"], default="8bit")
    prep.add_argument("--splits", default="train", help="comma-separated train,val,video or 'all'")
    prep.set_defaults(func=_prepare)

    st = sub.add_parser("stats", help="class counts, boxes per frame, box sizes of a prepared set")
    st.add_argument("output", help="a prepare output directory")
    st.add_argument("--tfrecords", action="store_true", help="read the TFRecords, not the labels")
    st.add_argument("--plot", help="save the statistics figure to this file (png)")
    st.set_defaults(func=_stats)
