"""Datasets: FLIR classes, preparation (FLIR -> KITTI + images + TFRecords), statistics, synthetic scenes."""
