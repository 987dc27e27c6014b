"""Triton serving: model repositories, a local tritonserver, the inference client and CLI.

Modules: :mod:`~cvlab.triton.model_repository` (config.pbtxt via Triton's protobuf),
:mod:`~cvlab.triton.server` (:class:`~cvlab.triton.server.TritonServer`),
:mod:`~cvlab.triton.client` (:class:`~cvlab.triton.client.TritonDetectNetClient`),
:mod:`~cvlab.export.demo_model`, :mod:`~cvlab.export.onnx_keras`, :mod:`~cvlab.triton.pipeline`,
:mod:`~cvlab.triton.commands` and :mod:`~cvlab.bench.triton`. Imports stay lazy (no TF at import).
"""
