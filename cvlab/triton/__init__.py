"""Triton serving: model repositories, a local tritonserver, the transport and the inference path.

Modules: :mod:`~cvlab.triton.model_repository` (config.pbtxt via Triton's protobuf),
:mod:`~cvlab.triton.server` (:class:`~cvlab.triton.server.TritonServer`),
:mod:`~cvlab.triton.shared_memory` (``/dev/shm`` tensors), :mod:`~cvlab.triton.client` (the
transport), :mod:`~cvlab.triton.pipeline` (images -> Detections -> labels/overlays),
:mod:`~cvlab.triton.outputs` (output names, the frame writer, the done-list) and
:mod:`~cvlab.triton.commands`. Imports stay lazy (no TensorFlow at import).
"""
