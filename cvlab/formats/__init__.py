"""cvlab's on-disk formats, one module per format, each reading and writing it.

* :mod:`cvlab.formats.kitti`: KITTI label files (15-field training, 16-field inference lines).
* :mod:`cvlab.formats.tfrecords`: TAO DetectNet_v2 TFRecords (schema, fold/shard names, the
  random partition, the split manifest) written like ``dataset_convert`` and read back.
* :mod:`cvlab.formats.tao_spec`: TAO training and ``dataset_convert`` specs (protobuf text).
* :mod:`cvlab.formats.flir_coco`: the FLIR ADAS v1/v2 COCO annotation files (read only).

Errors about a file's content are :class:`cvlab.errors.FormatError` subclasses carrying the
``path``, ``line`` and ``field``.

Example:
    >>> from cvlab.formats import kitti, tfrecords
    >>> kitti.format_kitti_line("Person", (1, 2, 30, 40)).split()[:5]
    ['person', '0.00', '0', '0.00', '1.00']
    >>> tfrecords.parse_shard_name("flir-fold-000-of-002-shard-00001-of-00010").fold
    0
"""
