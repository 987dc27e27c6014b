"""TAO dataset_convert schema, random partition, sharding, file names, fold split, split
manifest, read-back, the dataset_convert spec prepare writes."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from support.flir import write_frame

from cvlab.datasets.prepare import prepare_flir_dataset
from cvlab.errors import FormatError
from cvlab.formats import tfrecords as tfr
from cvlab.formats.kitti import KittiFormatError, read_kitti
from cvlab.formats.tao_spec import SpecError, load_dataset_convert_spec

TAO_KEYS = {
    "frame/id",
    "frame/height",
    "frame/width",
    "target/object_class",
    "target/truncation",
    "target/occlusion",
    "target/observation_angle",
    "target/coordinates_x1",
    "target/coordinates_y1",
    "target/coordinates_x2",
    "target/coordinates_y2",
    "target/world_bbox_h",
    "target/world_bbox_w",
    "target/world_bbox_l",
    "target/world_bbox_x",
    "target/world_bbox_y",
    "target/world_bbox_z",
    "target/world_bbox_rot_y",
}


def _tao_reference_partition(images_list: list[str], val_split: float) -> list[list[str]]:
    """TAO's own steps, transcribed: global random seeded 42 in __init__, shuffled in
    KITTIConverter._partition and again in DatasetConverter.convert (_shuffle)."""
    random.seed(42)
    val = val_split / 100.0
    num_val = int(val * len(images_list))
    partitions = [images_list[:num_val], images_list[num_val:]]
    for part in partitions:
        random.shuffle(part)
    for part in partitions:
        random.shuffle(part)
    return partitions


def test_random_partition_matches_tao() -> None:
    ids = [f"FLIR_{i:05d}" for i in range(1, 101)]
    parts = tfr.random_partition(ids, 10)
    assert parts == _tao_reference_partition(list(ids), 10)
    assert sorted(parts[0]) == ids[:10] and sorted(parts[1]) == ids[10:]
    assert parts[0] != ids[:10]  # shuffled
    assert tfr.random_partition(ids, 33)[0] == _tao_reference_partition(list(ids), 33)[0]
    with pytest.raises(ValueError, match="val_split"):
        tfr.random_partition(ids, 100)


def test_shards_and_names() -> None:
    shards = tfr.shard_partitions([list("abc"), list("defghijklmn")], 3)
    assert [len(s) for s in shards[0]] == [1, 1, 1]
    assert [len(s) for s in shards[1]] == [3, 3, 5]  # last shard takes the remainder
    assert len(tfr.shard_partitions([[], list("ab")], 10)) == 1  # empty fold dropped, as TAO
    assert (
        tfr.shard_file_name("out/flir", 0, 2, 3, 10)
        == "out/flir-fold-000-of-002-shard-00003-of-00010"
    )


def test_shard_names_parse_back() -> None:
    name = tfr.shard_file_name("out/flir", 1, 2, 3, 10)
    assert tfr.parse_shard_name(name) == tfr.ShardName("flir", 1, 2, 3, 10)
    assert tfr.parse_shard_name(Path("x-fold-000-of-002")) == tfr.ShardName("x", 0, 2, None, None)
    assert tfr.parse_shard_name("x-fold-000-of-002.tfrecord").fold == 0  # as TAO: anywhere
    assert tfr.parse_shard_name("flir.tfrecord") is None


def test_label_rules_follow_tao(tmp_path: Path) -> None:
    """One frame through write_tfrecords: KITTI values, TAO's integer-corner skip, bad labels."""
    write_frame(tmp_path / "images" / "a.jpg", (64, 48))
    label = tmp_path / "labels" / "a.txt"
    label.parent.mkdir()
    label.write_text(
        "Person 0.25 1 0.50 10.0 20.0 30.5 40.0 1 2 3 4 5 6 0.7\n"
        "\n"
        "person 0.00 0 0.00 10.2 20.0 10.9 40.0 0 0 0 0 0 0 0\n"  # int(x1) == int(x2): TAO skips
    )
    result = tfr.write_tfrecords(tmp_path, tmp_path / "tf" / "t", val_split=0, num_shards=1)
    assert result.files == [tmp_path / "tf" / "t-fold-000-of-002-shard-00000-of-00001"]
    assert result.manifest == tmp_path / "tf" / ".t-split.json"
    assert result.skipped_boxes == [f"{label}_1: [10, 20, 10, 40]"]
    assert dict(result.objects_per_class) == {"person": 1}
    (rec,) = tfr.read_records(result.files)
    assert (rec.frame_id, rec.width, rec.height, rec.classes) == ("images/a", 64, 48, ["person"])
    np.testing.assert_array_equal(rec.boxes, [[10.0, 20.0, 30.5, 40.0]])
    df = tfr.read_tfrecords(tmp_path / "tf")
    assert df[["truncation", "occlusion"]].values.tolist() == [[0.25, 1]]
    label.write_text("person 0 0 0 1 2 3 4 0 0 0 0 0 0 0 0.9\n")  # inference line: TAO refuses
    with pytest.raises(KittiFormatError, match=r"a.txt:1: expected 15 fields, got 16") as info:
        tfr.write_tfrecords(tmp_path, tmp_path / "tf" / "t", val_split=0, num_shards=1)
    assert (info.value.path, info.value.line) == (str(label), 1)
    # The failed set is not written: the complete one before it stays, manifest included.
    assert tfr.read_split(tmp_path / "tf").manifests == [tmp_path / "tf" / ".t-split.json"]
    assert [r.frame_id for r in tfr.read_records(tmp_path / "tf")] == ["images/a"]


def _small_dataset(root: Path, frames: int = 6) -> Path:
    """``root/images/fNN.jpg`` + ``root/labels/fNN.txt``, one person each."""
    for i in range(frames):
        write_frame(root / "images" / f"f{i:02d}.jpg", (64, 48))
        label = root / "labels" / f"f{i:02d}.txt"
        label.parent.mkdir(exist_ok=True)
        label.write_text(f"person 0.00 0 0.00 {i} 2.0 {i + 20} 30.0 0 0 0 0 0 0 0\n")
    return root


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _fail_after_first_shard(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> list[str]:
    """Injects the fault: the writer names each shard with ``shard_file_name``; its second call
    raises ``exc``, after the first shard is written (a disk error or Ctrl-C half-way)."""
    real, names = tfr.shard_file_name, []

    def failing(*args, **kwargs):
        if names:
            raise exc
        names.append(real(*args, **kwargs))
        return names[-1]

    monkeypatch.setattr(tfr, "shard_file_name", failing)
    return names


def test_a_failed_write_leaves_no_partial_set(tmp_path: Path, monkeypatch) -> None:
    """All or nothing: with no earlier set, no folder and no shard; nothing temporary left."""
    root = _small_dataset(tmp_path / "data")
    out = tmp_path / "out"
    names = _fail_after_first_shard(monkeypatch, OSError("injected: no space left on device"))
    with pytest.raises(OSError, match="injected"):
        tfr.write_tfrecords(root, out / "tfrecords" / "t", num_shards=3, progress=False)
    assert names == ["t-fold-000-of-002-shard-00000-of-00003"]  # one shard was written
    assert not (out / "tfrecords").exists()
    assert [p.name for p in out.iterdir()] == []  # no temporary folder either


def test_a_failed_write_keeps_the_previous_set_byte_for_byte(tmp_path: Path, monkeypatch) -> None:
    """A rerun (Ctrl-C here, with another shard count) that fails leaves the earlier complete
    set exactly as it was; one that succeeds replaces it entirely (no shard of the old count)."""
    root = _small_dataset(tmp_path / "data")
    folder = tmp_path / "out" / "tfrecords"
    tfr.write_tfrecords(root, folder / "t", val_split=20, num_shards=2, progress=False)
    before = _files(folder)
    assert len(before) == 5 and ".t-split.json" in before
    with monkeypatch.context() as m:
        _fail_after_first_shard(m, KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            tfr.write_tfrecords(root, folder / "t", val_split=20, num_shards=3, progress=False)
    assert _files(folder) == before
    assert [p.name for p in folder.parent.iterdir()] == ["tfrecords"]
    again = tfr.write_tfrecords(root, folder / "t", val_split=20, num_shards=3, progress=False)
    assert sorted(_files(folder)) == sorted([".t-split.json", *(f.name for f in again.files)])
    assert len(again.files) == 6 and tfr.read_split(folder).folds.keys() == {0, 1}


def test_the_output_folder_holds_nothing_else(tmp_path: Path) -> None:
    """The folder is replaced as a whole, so one holding other files is refused, untouched."""
    from cvlab.errors import CvlabError

    root = _small_dataset(tmp_path / "data", frames=2)
    (tmp_path / "tf").mkdir()
    (tmp_path / "tf" / "notes.txt").write_text("mine")
    (tmp_path / "tf" / "rgb-fold-000-of-002-shard-00000-of-00001").write_bytes(b"")
    with pytest.raises(CvlabError, match=r"tf: holds 2 entries that are not 't' TFRecords"):
        tfr.write_tfrecords(root, tmp_path / "tf" / "t", progress=False)
    assert sorted(p.name for p in (tmp_path / "tf").iterdir()) == [
        "notes.txt",
        "rgb-fold-000-of-002-shard-00000-of-00001",
    ]
    with pytest.raises(CvlabError, match="images, labels"):  # into the dataset root itself
        tfr.write_tfrecords(root, root / "t", progress=False)
    assert sorted(p.name for p in root.iterdir()) == ["images", "labels"]


def test_record_writer_round_trip(tmp_path: Path) -> None:
    import tensorflow as tf

    rec = tfr.Record(
        "dir/a", 640, 512, ["person", "car"], np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32)
    )
    empty = tfr.Record("dir/b", 640, 512, [], np.zeros((0, 4), np.float32))
    path = tmp_path / "x-fold-000-of-002-shard-00000-of-00001"
    tfr.write_records(path, [rec, empty])
    back, back_empty = tfr.read_records([str(path)])
    assert (back.frame_id, back.width, back.height, back.classes) == (
        "dir/a",
        640,
        512,
        ["person", "car"],
    )
    np.testing.assert_array_equal(back.boxes, rec.boxes)
    assert back_empty.boxes.shape == (0, 4) and back_empty.classes == []
    # The TAO fields dataset_convert writes are there too.
    raw = next(iter(tf.data.TFRecordDataset([str(path)])))
    ex = tf.train.Example.FromString(raw.numpy())
    assert set(ex.features.feature) == TAO_KEYS
    (tmp_path / "bad-fold-000-of-002").write_bytes(b"not a tfrecord")
    with pytest.raises(FormatError, match="bad-fold-000-of-002"):
        tfr.read_records(str(tmp_path / "bad-*"))


@pytest.fixture(scope="module")
def prepared(synthetic_v1: Path, tmp_path_factory: pytest.TempPathFactory):
    return prepare_flir_dataset(
        synthetic_v1,
        tmp_path_factory.mktemp("prep") / "out",
        classes="person,car",
        val_split=25,
        num_shards=2,
        progress=False,
    )


def test_written_files_follow_tao_naming(prepared) -> None:
    names = sorted(p.name for p in prepared.tfrecords_dir.iterdir())
    assert names == [".flir-split.json"] + [
        f"flir-fold-{f:03d}-of-002-shard-{s:05d}-of-00002" for f in (0, 1) for s in (0, 1)
    ]
    assert prepared.split_manifest_path == prepared.tfrecords_dir / ".flir-split.json"
    # A dot file: globs like TAO's tfrecords_path "tfrecords/*" do not take it for a TFRecord.
    assert [Path(p).name for p in tfr.tfrecord_files(str(prepared.tfrecords_dir / "*"))] == names[
        1:
    ]
    assert prepared.frames_per_fold == {0: 3, 1: 9}
    ids = tfr.list_frame_ids(prepared.images_dir)
    assert ids == sorted(ids) and len(ids) == 12


def test_examples_have_exactly_the_tao_features(prepared) -> None:
    import tensorflow as tf

    from cvlab.formats.tfrecords import FEATURE_SPEC

    path = prepared.tfrecords_dir / "flir-fold-001-of-002-shard-00000-of-00002"
    record = next(iter(tf.data.TFRecordDataset(str(path))))
    ex = tf.train.Example.FromString(record.numpy())
    assert set(ex.features.feature) == TAO_KEYS  # no pixels embedded
    parsed = tf.io.parse_single_example(record, FEATURE_SPEC)
    frame_id = parsed["frame/id"].numpy().decode()
    assert frame_id.startswith("images/") and int(parsed["frame/width"]) == 960
    assert int(parsed["frame/height"]) == 544
    classes = tf.sparse.to_dense(parsed["target/object_class"]).numpy().tolist()
    x1 = tf.sparse.to_dense(parsed["target/coordinates_x1"]).numpy()
    dets = read_kitti(
        prepared.labels_dir / f"{frame_id.split('/', 1)[1]}.txt", class_names=("car", "person")
    )
    assert [c.decode() for c in classes] == [dets.class_names[i] for i in dets.class_id]
    np.testing.assert_allclose(x1, dets.xyxy[:, 0], atol=1e-3)
    plain = tfr.parse_example(record.numpy())
    assert plain["frame/id"] == frame_id and plain["target/occlusion"] == [0] * len(classes)


def test_read_back_dataframe(prepared) -> None:
    df = tfr.read_tfrecords(prepared.tfrecords_dir)
    assert df.frame_id.nunique() == prepared.images == 12
    counts = df.object_class.value_counts().to_dict()
    assert counts == prepared.objects
    assert set(df[df.fold == 0].frame_id).isdisjoint(df[df.fold == 1].frame_id)
    assert (df.dropna().x2 > df.dropna().x1).all()
    glob_df = tfr.read_tfrecords(str(prepared.tfrecords_dir / "*fold-000*"))
    assert glob_df.frame_id.nunique() == 3
    with pytest.raises(FileNotFoundError):
        tfr.read_tfrecords(str(prepared.tfrecords_dir / "nothing*"))


def test_split_folds(prepared) -> None:
    train, val = tfr.split_folds(str(prepared.tfrecords_dir / "*"))
    assert len(train) == 2 and len(val) == 2
    assert all("-fold-000-" in f for f in val) and all("-fold-001-" in f for f in train)
    assert tfr.split_folds(prepared.tfrecords_dir, validation_fold=None) == (val + train, [])
    assert tfr.split_folds(str(prepared.tfrecords_dir / "*fold-000*")) == (val, val)  # one fold
    records = tfr.read_records(val)
    assert len(records) == 3
    assert all(r.frame_id.startswith("images/") and r.width == 960 for r in records)
    with pytest.raises(FileNotFoundError, match="no TFRecord files"):
        tfr.split_folds(str(prepared.tfrecords_dir / "nothing-*"))


def test_split_manifest_matches_the_records(prepared, tmp_path: Path) -> None:
    manifest = tfr.read_split_manifest(prepared.split_manifest_path)
    doc = json.loads(prepared.split_manifest_path.read_text())
    assert (doc["format"], doc["version"], doc["prefix"]) == ("cvlab.tfrecords.split", 1, "flir")
    assert (manifest.val_split, manifest.seed, manifest.num_shards) == (25, 42, 2)
    assert [s.file for s in manifest.shards] == [p.name for p in prepared.tfrecord_files]
    df = tfr.read_tfrecords(prepared.tfrecords_dir)
    for shard in manifest.shards:  # the manifest says what each file holds, in record order
        rows = df[df.file == shard.file].drop_duplicates("frame_id")
        assert [f.split("/")[-1] for f in rows.frame_id] == shard.frame_ids
        assert set(rows.fold) == {shard.fold}
    split = tfr.read_split(prepared.tfrecords_dir)
    assert split.manifests == [prepared.split_manifest_path]
    assert split.folds == manifest.folds() and {k: len(v) for k, v in split.folds.items()} == {
        0: 3,
        1: 9,
    }
    # Without a manifest (TFRecords made by TAO) the records are read: the same split.
    copy = tmp_path / "tao"
    shutil.copytree(prepared.tfrecords_dir, copy)
    (copy / ".flir-split.json").unlink()
    from_records = tfr.read_split(str(copy / "*-fold-*"))
    assert from_records.manifests == [] and from_records.folds == split.folds
    only_val = tfr.read_split(str(prepared.tfrecords_dir / "*fold-000*"))
    assert only_val.folds == {0: split.frame_ids(0)} and only_val.frame_ids(1) == []


def test_stale_or_broken_manifest_falls_back_to_the_records(prepared, tmp_path: Path) -> None:
    copy = tmp_path / "tf"
    shutil.copytree(prepared.tfrecords_dir, copy)
    manifest = copy / ".flir-split.json"
    want = tfr.read_split(prepared.tfrecords_dir).folds
    shard = copy / "flir-fold-001-of-002-shard-00000-of-00002"
    later = manifest.stat().st_mtime + 10
    os.utime(shard, (later, later))  # rewritten after the manifest (by TAO, say)
    split = tfr.read_split(copy)
    assert split.manifests == [] and split.folds == want
    manifest.write_text("{broken")
    assert tfr.read_split(copy).folds == want
    with pytest.raises(FormatError, match=r"\.flir-split\.json:1: malformed JSON"):
        tfr.read_split_manifest(manifest)
    manifest.write_text(json.dumps({"format": "other"}))
    with pytest.raises(FormatError, match="not a cvlab.tfrecords.split manifest") as info:
        tfr.read_split_manifest(manifest)
    assert info.value.field == "format"


def test_dataset_convert_spec_round_trips(prepared, tmp_path: Path) -> None:
    msg = load_dataset_convert_spec(prepared.spec_path)
    k = msg.kitti_config
    assert k.root_directory_path == str(prepared.output_dir) == msg.image_directory_path
    assert (k.image_dir_name, k.label_dir_name, k.image_extension) == ("images", "labels", ".jpg")
    assert (k.partition_mode, k.num_partitions, k.num_shards, k.val_split) == ("random", 2, 2, 25.0)
    bad = tmp_path / "my.txt"
    bad.write_text("kitti_config {\n  bogus_field: 1\n}\n")
    with pytest.raises(SpecError, match=r"my.txt:2:3: .*bogus_field") as info:
        load_dataset_convert_spec(bad)
    assert (info.value.line, info.value.column) == (2, 3)


def test_spec_parses_with_tao_compiled_schema(prepared) -> None:
    # The core engineer's compiled copy of TAO's dataset_export_config.proto (cvlab/protos).
    pb2 = pytest.importorskip("cvlab.protos.detectnet_v2.dataset_export_config_pb2")
    from google.protobuf import text_format

    msg = text_format.Parse(prepared.spec_path.read_text(), pb2.DatasetExportConfig())
    assert msg.WhichOneof("convert_config_type") == "kitti_config"
    assert msg.kitti_config.image_extension == ".jpg" and msg.kitti_config.num_partitions == 2
