"""``cvlab flir synth|prepare|stats``: the FLIR data steps (rows of :data:`cvlab.cli.VERBS`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cvlab.cli import EXIT_OK, EXIT_SKIPPED_IMAGES, parse_size
from cvlab.detectnet import PEOPLENET_INPUT_SIZE


def synth(args: argparse.Namespace) -> int:
    from cvlab.datasets.synthetic import generate_synthetic_flir

    root = generate_synthetic_flir(
        args.output, args.layout, args.num_images, args.seed, args.size, progress=True
    )
    print(f"synthetic FLIR {args.layout} dataset: {root}")
    return 0


def prepare(args: argparse.Namespace) -> int:
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
    print(report.summary())  # names the files and ids of annotations without images
    _print_some("unreadable", report.unreadable_images)
    _print_some("skipped", [f"{name}: {reason}" for name, reason in report.skipped_images])
    print(f"TAO dataset_convert spec: {report.spec_path}")
    return EXIT_SKIPPED_IMAGES if report.unreadable_images or report.skipped_images else EXIT_OK


def _print_some(what: str, lines: list[str], limit: int = 20) -> None:
    for line in lines[:limit]:
        print(f"  {what}: {line}")
    if len(lines) > limit:
        print(f"  ... and {len(lines) - limit} more {what}")


def stats(args: argparse.Namespace) -> int:
    from cvlab.datasets import stats as dataset_stats
    from cvlab.formats.tfrecords import read_tfrecords

    if args.tfrecords:  # only then is TensorFlow loaded: without its start-up lines
        from cvlab.quiet import quiet_tensorflow

        quiet_tensorflow()
    out = Path(args.output)
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: no such folder (a `cvlab flir prepare` output)")
    df = (
        read_tfrecords(out / "tfrecords")
        if args.tfrecords
        else dataset_stats.labels_dataframe(out / "labels")
    )
    print(dataset_stats.summarize(df).to_string())
    print()
    print(dataset_stats.boxes_per_image(df).to_string())
    print()
    print(dataset_stats.box_size_histogram(df).to_string())
    if args.plot:
        from cvlab.fileio import atomic_save_figure
        from cvlab.viz.plots import plot_dataset_stats

        atomic_save_figure(args.plot, plot_dataset_stats(df, title=str(out)), dpi=100)
        print(f"plot: {args.plot}")
    return 0


def synth_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab flir synth`` options."""
    p.add_argument("--layout", choices=["v1", "v2"], default="v1")
    p.add_argument("--num-images", type=int, default=200, help="frames in the train split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=parse_size, default=(640, 512), help="WIDTHxHEIGHT")
    p.add_argument("--output", required=True, help="dataset root to create")


def prepare_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab flir prepare`` options."""
    p.description = (
        "Convert a FLIR thermal download (v1.3 or v2, or `cvlab flir synth` output) into KITTI "
        "labels, resized 3-channel JPEGs and TAO TFRecords, resuming an earlier run into the "
        "same output."
    )
    p.epilog = (
        "exit status:\n"
        "  0    every image listed in the annotations was converted\n"
        "  2    a usage or input error, in one line (also: no usable image at all; then\n"
        "       nothing is written)\n"
        "  3    some images were skipped (unreadable, bad file names, duplicates), each one\n"
        "       listed with its reason; everything else was written\n"
        "  130  interrupted: a rerun reuses the images done so far\n"
        "\n"
        "The TFRecords are written all or nothing: a failure or Ctrl-C while writing them\n"
        "leaves the previous complete output/tfrecords (or none), never a partial set."
    )
    p.add_argument("source", help="FLIR dataset root (or one split folder)")
    p.add_argument("output", help="output directory")
    p.add_argument("--classes", default="person", help="comma-separated, e.g. person,car,bicycle")
    p.add_argument(
        "--size", type=parse_size, default=PEOPLENET_INPUT_SIZE, help="output WIDTHxHEIGHT"
    )
    p.add_argument("--val-split", type=float, default=10, help="percent in fold 0")
    p.add_argument("--num-shards", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--keep-background", action="store_true", help="other classes -> dontcare")
    p.add_argument("--image-type", choices=["8bit", "16bit"], default="8bit")
    p.add_argument("--splits", default="train", help="comma-separated train,val,video or 'all'")


def stats_arguments(p: argparse.ArgumentParser) -> None:
    """``cvlab flir stats`` options."""
    p.add_argument("output", help="a prepare output directory")
    p.add_argument("--tfrecords", action="store_true", help="read the TFRecords, not the labels")
    p.add_argument("--plot", help="save the statistics figure to this file (png)")
