"""Clustering configs: both protobuf text forms, shipped PeopleNet files, errors, generated code."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from cvlab.inference.clustering_config import (
    PEOPLENET_IR_CONFIG,
    PEOPLENET_RGB_CONFIG,
    ClassClusteringConfig,
    ConfigError,
    MissingClassError,
    PostprocessingConfig,
    default_config,
    load_clustering_config,
    load_training_postprocessing,
)

REPO = Path(__file__).resolve().parents[2]

TRAINING_BLOCK = """\
postprocessing_config {
  target_class_config {
    key: "car"
    value {
      clustering_config {
        clustering_algorithm: NMS
        coverage_threshold: 0.005
        minimum_bounding_box_height: 10
        nms_iou_threshold: 0.4
        nms_confidence_threshold: 0.2
      }
      confidence_config { confidence_threshold: 0.3 }
    }
  }
  target_class_config {
    key: "person"
    value {
      clustering_config {
        clustering_algorithm: HYBRID
        coverage_threshold: 0.0075
        dbscan_eps: 0.23
        dbscan_min_samples: 0.05
        dbscan_confidence_threshold: 0.6
        minimum_bounding_box_height: 20
      }
    }
  }
}
"""


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_peoplenet_rgb_values(tmp_path: Path) -> None:
    with warnings.catch_warnings():  # the shipped config's legacy 0.05: documented, no warning
        warnings.simplefilter("error")
        cfg = load_clustering_config(PEOPLENET_RGB_CONFIG)
    copy = tmp_path / "mine.prototxt"  # a user's edited copy: one warning for all classes
    copy.write_text(PEOPLENET_RGB_CONFIG.read_text() + "# edited\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_clustering_config(copy)
    assert [str(w.message).split(": ", 1)[1] for w in caught] == [
        "class 'person', 'bag', 'face': dbscan_min_samples=0.05 is a legacy float; "
        "using min_samples=1 (algorithm 'dbscan_legacy' keeps the float meaning)"
    ]
    assert cfg.class_names == ("person", "bag", "face")
    assert (cfg.linewidth, cfg.stride) == (4, 16)
    conf = {n: c.dbscan_confidence_threshold for n, c in cfg.classes.items()}
    assert conf == {"person": 0.9, "bag": 0.9, "face": 0.7}
    for c in cfg.classes.values():
        assert (c.coverage_threshold, c.minimum_bounding_box_height) == (0.005, 4)
        assert (c.dbscan_eps, c.dbscan_min_samples, c.legacy_min_samples) == (0.3, 1, 0.05)
        assert c.algorithm == "dbscan"
    assert cfg.classes["person"].bbox_color == (0, 255, 0)


def test_peoplenet_ir_config_has_one_shipped_copy() -> None:
    cfg = _quiet(load_clustering_config, PEOPLENET_IR_CONFIG, algorithm="dbscan_legacy")
    assert cfg.class_names == ("person",) and cfg.classes["person"].algorithm == "dbscan_legacy"
    copies = sorted(
        p.relative_to(REPO).as_posix()
        for p in REPO.rglob("clustering_config_peoplenet_*.prototxt")
        if not {".venv", "runs", ".git"} & set(p.relative_to(REPO).parts)
    )
    assert copies == [
        "cvlab/resources/clustering/clustering_config_peoplenet_ir.prototxt",
        "cvlab/resources/clustering/clustering_config_peoplenet_rgb.prototxt",
    ]


def test_class_selection_and_missing_class(tmp_path: Path) -> None:
    cfg = _quiet(load_clustering_config, PEOPLENET_RGB_CONFIG, class_names=["face", "person"])
    assert cfg.class_names == ("face", "person")
    with pytest.raises(MissingClassError, match=r"clustering_config_peoplenet_ir.prototxt.*'bag'"):
        _quiet(load_clustering_config, PEOPLENET_IR_CONFIG, class_names=["person", "bag"])


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.prototxt"
    path.write_text(text)
    return path


def test_unknown_field_names_file_line_and_field(tmp_path: Path) -> None:
    text = PEOPLENET_IR_CONFIG.read_text().replace("dbscan_eps: 0.3", "dbscan_epz: 0.3")
    path = _write(tmp_path, text)
    line = text.splitlines().index("      dbscan_epz: 0.3") + 1
    with pytest.raises(ConfigError, match=rf"cfg.prototxt:{line}:\d+: .*dbscan_epz"):
        load_clustering_config(path)


def test_syntax_error_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "linewidth: 4\nstride: {\n")
    with pytest.raises(ConfigError, match=r"cfg.prototxt:2:"):
        load_clustering_config(path)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("coverage_threshold: 0.005", "coverage_threshold: 1.5", "coverage_threshold"),
        ("dbscan_eps: 0.3", "dbscan_eps: 2.0", "dbscan_eps"),  # TAO: [0, 1] for 1 - IoU
        (
            "minimum_bounding_box_height: 4",
            "minimum_bounding_box_height: -1",
            "minimum_bounding_box_height",
        ),
        ("R: 0", "R: 300", "bbox_color"),
    ],
)
def test_bad_values_name_file_line_class_and_field(tmp_path: Path, old, new, field) -> None:
    text = PEOPLENET_IR_CONFIG.read_text().replace(old, new)
    path = _write(tmp_path, text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if field in t and "#" not in t)
    with pytest.raises(ConfigError, match=rf"cfg.prototxt:{line}: class 'person': field '{field}'"):
        _quiet(load_clustering_config, path)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="nope.prototxt: clustering config file not found"):
        load_clustering_config("nope.prototxt")


def test_training_spec_block(tmp_path: Path) -> None:
    path = _write(tmp_path, TRAINING_BLOCK)
    with pytest.warns(UserWarning, match="class 'person'.*legacy float"):
        cfg = load_training_postprocessing(path)
    assert cfg.class_names == ("car", "person")
    car, person = cfg.classes["car"], cfg.classes["person"]
    assert (car.algorithm, car.nms_iou_threshold, car.nms_confidence_threshold) == ("nms", 0.4, 0.2)
    assert car.output_confidence_threshold == 0.3 and car.minimum_bounding_box_height == 10
    assert (person.algorithm, person.dbscan_eps, person.coverage_threshold) == (
        "hybrid",
        0.23,
        0.0075,
    )
    # the body alone and a parsed message give the same config
    body = "\n".join(TRAINING_BLOCK.splitlines()[1:-1])
    assert _quiet(load_training_postprocessing, _write(tmp_path, body)) == cfg
    from google.protobuf import text_format

    from cvlab.protos.detectnet_v2 import postprocessing_config_pb2 as pb

    message = text_format.Parse(TRAINING_BLOCK, pb.PostProcessingConfigFile())
    assert _quiet(load_training_postprocessing, message) == cfg
    assert _quiet(load_training_postprocessing, message.postprocessing_config) == cfg


def test_training_spec_errors(tmp_path: Path) -> None:
    bad = TRAINING_BLOCK.replace("clustering_algorithm: NMS", "clustering_algorithm: KMEANS")
    with pytest.raises(ConfigError, match=r"cfg.prototxt:6:\d+: .*KMEANS"):
        load_training_postprocessing(_write(tmp_path, bad))
    bad = TRAINING_BLOCK.replace("nms_iou_threshold: 0.4", "nms_iou_threshold: 1.4")
    with pytest.raises(
        ConfigError, match=r"cfg.prototxt:9: class 'car': field 'nms_iou_threshold'"
    ):
        _quiet(load_training_postprocessing, _write(tmp_path, bad))


def test_dataclass_validation_and_defaults() -> None:
    cfg = default_config(["car", "bicycle"])
    assert (
        cfg.class_names == ("car", "bicycle")
        and cfg.classes["car"].bbox_color != cfg.classes["bicycle"].bbox_color
    )
    with pytest.raises(ConfigError, match="field 'algorithm'"):
        PostprocessingConfig({"car": ClassClusteringConfig(algorithm="kmeans")})
    with pytest.raises(ConfigError, match="field 'stride'"):
        PostprocessingConfig({"car": ClassClusteringConfig()}, stride=0)
    assert cfg.with_algorithm("nms").classes["bicycle"].algorithm == "nms"


def test_generated_protobuf_modules_are_up_to_date(tmp_path: Path) -> None:
    from cvlab.protos.build import build

    written = build(tmp_path)
    assert len(written) >= 2
    for path in written:
        rel = path.relative_to(tmp_path)
        assert (REPO / rel).read_text() == path.read_text(), (
            f"{rel} is stale: run python -m cvlab.protos.build"
        )


def test_min_samples_zero_means_one_and_negative_is_refused() -> None:
    # TAO: max(int(x), 1); 0 is also what an unset proto field reads as
    assert ClassClusteringConfig(dbscan_min_samples=0).dbscan_min_samples == 1
    assert ClassClusteringConfig(dbscan_min_samples=0.0).dbscan_min_samples == 1
    with pytest.raises(ConfigError, match="field 'dbscan_min_samples' must be >= 0"):
        PostprocessingConfig({"car": ClassClusteringConfig(dbscan_min_samples=-1)})


def test_training_spec_limits_dbscan_confidence_to_one(tmp_path: Path) -> None:
    # TAO's TRAINVAL spec validator: dbscan_confidence_threshold in [0, 1] in a training spec
    # (a prototxt for inference may use a larger summed coverage)
    body = (
        'target_class_config { key: "car" value { clustering_config { dbscan_eps: 0.2 '
        "dbscan_min_samples: 1 dbscan_confidence_threshold: 1.5 } } }\n"
    )
    with pytest.raises(
        ConfigError, match="field 'dbscan_confidence_threshold' must be <= 1 in a TAO training"
    ):
        load_training_postprocessing(_write(tmp_path, body))
    assert ClassClusteringConfig(dbscan_confidence_threshold=1.5).problems() == []
