"""Triton python-backend model that costs nothing: it answers every frame with fixed outputs.

``cvlab bench client`` serves it so that the client's own CPU per frame can be measured: the
server only copies ``cov.npy`` and ``bbox.npy`` (saved beside this file, one frame's
``[C, gh, gw]`` / ``[4C, gh, gw]`` DetectNet_v2 grids) once per frame of each request. It runs
inside Triton's python stub, so it imports only numpy and ``triton_python_backend_utils``.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        here = os.path.dirname(os.path.abspath(__file__))
        grids = {kind: np.load(os.path.join(here, f"{kind}.npy")) for kind in ("cov", "bbox")}
        self.input_name = config["input"][0]["name"]
        self.outputs = {}
        for output in config["output"]:
            kind = "cov" if "cov" in output["name"] else "bbox"
            self.outputs[output["name"]] = np.ascontiguousarray(grids[kind], np.float32)

    def execute(self, requests):
        responses = []
        for request in requests:
            size = len(pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy())
            tensors = [
                pb_utils.Tensor(name, np.repeat(grid[None], size, axis=0))
                for name, grid in self.outputs.items()
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
