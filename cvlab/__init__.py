"""cvlab: learn and run NVIDIA PeopleNet / DetectNet_v2 as a computer-vision service."""

import os

# TensorFlow 2.21's oneDNN AVX-512 convolution kernels abort training with "double free or
# corruption" on some AVX-512 CPUs (seen on AMD EPYC); its AVX2 kernels are safe (and faster
# than turning oneDNN off: 37 s vs 43 s for the trainer tests there). oneDNN reads this when it
# creates its first kernel, so it also holds when TensorFlow was imported first. Set
# ONEDNN_MAX_CPU_ISA yourself to choose otherwise.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
