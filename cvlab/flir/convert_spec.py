"""TAO ``dataset_convert`` spec (``DatasetExportConfig`` with a ``kitti_config``): write and check.

The spec lets a TAO user regenerate the TFRecords with ``detectnet_v2 dataset_convert -d SPEC -o
OUT/tfrecords/flir``. The message schema is TAO's ``dataset_export_config.proto`` /
``kitti_config.proto`` (proto3; field numbers as in NVIDIA/tao_tensorflow1_backend), built here
at run time with protobuf's descriptor API, so the text is validated by protobuf's own
``text_format`` parser (unknown fields, wrong types -> error with line and column).

Example:
    >>> text = dataset_convert_spec_text("/data/out", val_split=10, num_shards=10)
    >>> msg = parse_dataset_convert_spec(text)
    >>> msg.kitti_config.image_dir_name, msg.kitti_config.image_extension, msg.kitti_config.val_split
    ('images', '.jpg', 10.0)
"""

from __future__ import annotations

import functools
import os
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

_KITTI_FIELDS = (  # (name, number, type)
    ("root_directory_path", 1, "string"),
    ("image_dir_name", 2, "string"),
    ("label_dir_name", 3, "string"),
    ("point_clouds_dir", 4, "string"),
    ("calibrations_dir", 5, "string"),
    ("kitti_sequence_to_frames_file", 6, "string"),
    ("image_extension", 7, "string"),
    ("num_partitions", 8, "uint32"),
    ("num_shards", 9, "uint32"),
    ("partition_mode", 10, "string"),
    ("val_split", 11, "float"),
)
_TYPES = {
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "uint32": descriptor_pb2.FieldDescriptorProto.TYPE_UINT32,
    "float": descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT,
}


class SpecError(ValueError):
    """A dataset_convert spec that protobuf cannot parse."""


@functools.cache
def dataset_export_config_class() -> type:
    """The ``DatasetExportConfig`` message class (KITTI part of TAO's schema)."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="cvlab_flir_dataset_export_config.proto", package="cvlab_flir", syntax="proto3"
    )
    kitti = fdp.message_type.add(name="KITTIConfig")
    for name, number, kind in _KITTI_FIELDS:
        kitti.field.add(name=name, number=number, type=_TYPES[kind], label=1)
    export = fdp.message_type.add(name="DatasetExportConfig")
    export.field.add(
        name="kitti_config",
        number=2,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=".cvlab_flir.KITTIConfig",
        label=1,
    )
    export.field.add(name="image_directory_path", number=6, type=_TYPES["string"], label=1)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("cvlab_flir.DatasetExportConfig")
    )


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
