"""Triton serving: model repositories, a local tritonserver, the inference client and CLI.

Modules: :mod:`~cvlab.triton.model_repository` (config.pbtxt via Triton's protobuf),
:mod:`~cvlab.triton.server` (:class:`~cvlab.triton.server.TritonServer`),
:mod:`~cvlab.triton.client` (:class:`~cvlab.triton.client.TritonDetectNetClient`),
:mod:`~cvlab.triton.demo_model`, :mod:`~cvlab.triton.onnx_export`, :mod:`~cvlab.triton.infer`,
:mod:`~cvlab.triton.cli` and :mod:`~cvlab.triton.bench`. Imports stay lazy (no TF at import).
"""
