"""TAO dataset_convert schema, random partition, sharding, file names, read-back, spec."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from cvlab.datasets.prepare import prepare_flir_dataset
from cvlab.formats import tfrecords as tfr
from cvlab.formats.convert_spec import SpecError, parse_dataset_convert_spec
from cvlab.formats.kitti import read_kitti

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


def test_label_file_rules(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text(
        "Person 0.00 1 0.00 10.0 20.0 30.5 40.0 0 0 0 0 0 0 0\n"
        "\n"
        "person 0.00 0 0.00 10.2 20.0 10.9 40.0 0 0 0 0 0 0 0\n"  # int(x1) == int(x2): TAO skips
    )
    objects, skipped = tfr.read_label_file(p)
    assert [o.object_class for o in objects] == ["person"] and objects[0].occlusion == 1
    assert objects[0].values["target/coordinates_x2"] == 30.5 and len(skipped) == 1
    p.write_text("person 1 2 3\n")
    with pytest.raises(tfr.LabelFormatError, match=r"a.txt: object 0: expected 15 fields"):
        tfr.read_label_file(p)


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
    assert names == [
        f"flir-fold-{f:03d}-of-002-shard-{s:05d}-of-00002" for f in (0, 1) for s in (0, 1)
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


def test_dataset_convert_spec_round_trips(prepared) -> None:
    msg = parse_dataset_convert_spec(prepared.spec_path.read_text(), str(prepared.spec_path))
    k = msg.kitti_config
    assert k.root_directory_path == str(prepared.output_dir) == msg.image_directory_path
    assert (k.image_dir_name, k.label_dir_name, k.image_extension) == ("images", "labels", ".jpg")
    assert (k.partition_mode, k.num_partitions, k.num_shards, k.val_split) == ("random", 2, 2, 25.0)
    with pytest.raises(SpecError, match=r"my.txt: 2:3"):
        parse_dataset_convert_spec("kitti_config {\n  bogus_field: 1\n}\n", "my.txt")


def test_spec_parses_with_tao_compiled_schema(prepared) -> None:
    # The core engineer's compiled copy of TAO's dataset_export_config.proto (cvlab/protos).
    pb2 = pytest.importorskip("cvlab.protos.detectnet_v2.dataset_export_config_pb2")
    from google.protobuf import text_format

    msg = text_format.Parse(prepared.spec_path.read_text(), pb2.DatasetExportConfig())
    assert msg.WhichOneof("convert_config_type") == "kitti_config"
    assert msg.kitti_config.image_extension == ".jpg" and msg.kitti_config.num_partitions == 2
