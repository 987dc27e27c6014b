"""FLIR ADAS thermal data: readers (v1.3, v2), KITTI conversion, TAO TFRecords, synthetic data.

Main entry points (import from the sub-modules; this package imports nothing heavy):

* :func:`cvlab.flir.convert.prepare_flir_dataset` -> :class:`cvlab.flir.convert.PrepareReport`
* :func:`cvlab.flir.synthetic.generate_synthetic_flir`,
  :class:`cvlab.flir.synthetic.SyntheticThermalGenerator`
* :func:`cvlab.flir.coco.load_flir`, :func:`cvlab.flir.coco.detect_layout`
* :data:`cvlab.flir.tfrecords.FEATURE_SPEC`, :func:`cvlab.flir.tfrecords.read_tfrecords`,
  :func:`cvlab.flir.tfrecords.parse_example`
* :func:`cvlab.flir.stats.plot_dataset_stats`
"""
