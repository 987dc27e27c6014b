"""Triton python-backend model shipped by cvlab: runs the model.onnx beside it with onnxruntime.

Copied as ``<version>/model.py`` into python-backend model repositories (the bundled CPU
tritonserver of nvidia-pytriton has no onnxruntime backend). It runs inside Triton's python
stub, so it imports only numpy, onnxruntime and ``triton_python_backend_utils``.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        here = os.path.dirname(os.path.abspath(__file__))
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("CVLAB_ORT_THREADS", "1"))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.path.join(here, "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]
        onnx_inputs = [i.name for i in self.session.get_inputs()]
        onnx_outputs = [o.name for o in self.session.get_outputs()]
        missing = [n for n in self.input_names if n not in onnx_inputs] + [
            n for n in self.output_names if n not in onnx_outputs
        ]
        if missing:
            raise pb_utils.TritonModelException(
                f"model.onnx lacks tensors named in config.pbtxt: {missing}; "
                f"ONNX inputs {onnx_inputs}, outputs {onnx_outputs}"
            )

    def execute(self, requests):
        sizes, feeds = [], {n: [] for n in self.input_names}
        for request in requests:
            for name in self.input_names:
                array = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                feeds[name].append(array)
            sizes.append(len(feeds[self.input_names[0]][-1]))
        batch = {n: np.concatenate(v) for n, v in feeds.items()}
        results = self.session.run(self.output_names, batch)
        responses, start = [], 0
        for size in sizes:
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(value[start : start + size]))
                for name, value in zip(self.output_names, results, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses
