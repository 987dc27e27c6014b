"""TAO ``dataset_convert`` spec (``DatasetExportConfig`` with a ``kitti_config``): write and check.

The spec lets a TAO user regenerate the TFRecords with ``detectnet_v2 dataset_convert -d SPEC -o
OUT/tfrecords/flir``. The message schema is TAO's ``dataset_export_config.proto`` /
``kitti_config.proto`` (proto3; field numbers as in NVIDIA/tao_tensorflow1_backend), compiled in
``cvlab/protos/detectnet_v2``, so the text is validated by protobuf's own ``text_format`` parser
(unknown fields, wrong types -> error with line and column).

Example:
    >>> text = dataset_convert_spec_text("/data/out", val_split=10, num_shards=10)
    >>> msg = parse_dataset_convert_spec(text)
    >>> msg.kitti_config.image_dir_name, msg.kitti_config.image_extension, msg.kitti_config.val_split
    ('images', '.jpg', 10.0)
"""

from __future__ import annotations

import os
from typing import Any

from google.protobuf import text_format

from cvlab.errors import ConfigError
from cvlab.protos.detectnet_v2 import dataset_export_config_pb2


class SpecError(ConfigError):
    """A dataset_convert spec that protobuf cannot parse."""


def dataset_export_config_class() -> type:
    """TAO's ``DatasetExportConfig`` message class (``cvlab/protos/detectnet_v2``)."""
    return dataset_export_config_pb2.DatasetExportConfig


def dataset_convert_spec_text(
    root_directory_path: str | os.PathLike,
    *,
    image_dir_name: str = "images",
    label_dir_name: str = "labels",
    image_extension: str = ".jpg",
    val_split: float = 10,
    num_shards: int = 10,
) -> str:
    """The spec text for TAO's random partition mode (2 folds; fold 0 = validation).

    TAO appends ``image_extension`` to frame ids as is, so it carries the dot (``".jpg"``).
    """
    msg: Any = dataset_export_config_class()()
    k = msg.kitti_config
    k.root_directory_path = str(root_directory_path)
    k.image_dir_name = image_dir_name
    k.label_dir_name = label_dir_name
    k.image_extension = image_extension
    k.partition_mode = "random"
    k.num_partitions = 2
    k.num_shards = int(num_shards)
    k.val_split = float(val_split)
    msg.image_directory_path = str(root_directory_path)
    return text_format.MessageToString(msg)


def parse_dataset_convert_spec(text: str, source: str = "<spec>") -> Any:
    """Parse spec text into a ``DatasetExportConfig`` message; errors name ``source``."""
    try:
        return text_format.Parse(text, dataset_export_config_class()())
    except text_format.ParseError as exc:
        raise SpecError(f"{source}: {exc}") from None
