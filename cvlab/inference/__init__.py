"""Inference core, numpy/OpenCV only: preprocess, decode, cluster, postprocess, clustering configs."""
