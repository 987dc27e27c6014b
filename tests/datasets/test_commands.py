"""``cvlab flir prepare`` through the command line: the exit status says whether images were
skipped, and an interrupted TFRecord write leaves the previous set."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.flir import ann, image, write_v1_split

from cvlab.cli import EXIT_INTERRUPTED, EXIT_OK, EXIT_SKIPPED_IMAGES, main
from cvlab.datasets.synthetic import generate_synthetic_flir
from cvlab.formats import tfrecords as tfr


def _prepare(src: Path, out: Path, *more: str) -> int:
    return main(["flir", "prepare", str(src), str(out), "--num-shards", "1", *more])


def test_exit_status_3_when_an_image_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0 on a clean set; 3 with one unreadable image, which the output names, and every
    other image, label and TFRecord still written."""
    src = generate_synthetic_flir(tmp_path / "flir", "v1", num_images=4, seed=1)
    assert _prepare(src, tmp_path / "clean") == EXIT_OK
    assert "skipped images: 0 unreadable, 0 bad file names/duplicates" in capsys.readouterr().out
    bad = sorted((src / "train" / "thermal_8_bit").iterdir())[1]
    bad.write_bytes(b"not a jpeg")
    out = tmp_path / "broken"
    assert _prepare(src, out) == EXIT_SKIPPED_IMAGES
    printed = capsys.readouterr().out
    assert "skipped images: 1 unreadable, 0 bad file names/duplicates" in printed
    assert f"  unreadable: {bad}: " in printed
    assert len(list((out / "images").iterdir())) == len(list((out / "labels").iterdir())) == 3
    assert sum(len(ids) for ids in tfr.read_split(out / "tfrecords").folds.values()) == 3


def test_exit_status_3_when_a_file_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file name outside the dataset root is skipped (a bad file name): exit 3, named."""
    src = tmp_path / "src"
    evil = {"id": 1, "width": 640, "height": 512, "file_name": "../../evil.jpeg"}
    write_v1_split(src, [image(0), evil], [ann(1, 0, 1, [100, 50, 20, 80])])
    assert _prepare(src, tmp_path / "out") == EXIT_SKIPPED_IMAGES
    printed = capsys.readouterr().out
    assert "  skipped: " in printed and "../../evil.jpeg" in printed


def test_ctrl_c_while_writing_tfrecords_keeps_the_previous_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected fault: the writer's second ``shard_file_name`` call raises KeyboardInterrupt
    (Ctrl-C after the first shard). Exit 130, and the earlier TFRecords, manifest and spec are
    byte for byte as they were, with nothing temporary beside them."""
    src = generate_synthetic_flir(tmp_path / "flir", "v1", num_images=6, seed=2)
    out = tmp_path / "out"
    assert _prepare(src, out) == EXIT_OK
    before = {p: p.read_bytes() for p in sorted((out / "tfrecords").iterdir())}
    spec = (out / "dataset_convert_spec.txt").read_bytes()
    real, calls = tfr.shard_file_name, []

    def ctrl_c_on_second_shard(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tfr, "shard_file_name", ctrl_c_on_second_shard)
    assert main(["flir", "prepare", str(src), str(out), "--num-shards", "3"]) == EXIT_INTERRUPTED
    assert len(calls) == 2
    assert {p: p.read_bytes() for p in sorted((out / "tfrecords").iterdir())} == before
    assert (out / "dataset_convert_spec.txt").read_bytes() == spec  # still matches the set
    assert not [p for p in out.rglob(".*") if p.name != ".flir-split.json"]


def test_a_class_not_in_the_annotations_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20 item 10: ``--classes persn`` is one error line naming the class and the file,
    exit 2, and nothing written (not "objects: none", exit 0). Aliases still count."""
    src = generate_synthetic_flir(tmp_path / "flir", "v2", num_images=2, seed=1)
    out = tmp_path / "out"
    assert _prepare(src, out, "--classes", "person,persn") == 2
    err = capsys.readouterr().err
    assert "'persn'" in err and "coco.json" in err and "person" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    assert _prepare(src, out, "--classes", "person,bike") == EXIT_OK  # v2 spells it bike
