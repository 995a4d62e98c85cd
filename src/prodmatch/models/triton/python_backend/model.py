"""Triton Python-backend model that runs an ONNX graph with ONNX Runtime.

Copied into each model's version folder as model.py by `prodmatch model export --format triton --backend python`,
for Triton builds without the ONNX Runtime backend (the `tritonserver` that ships in nvidia-pytriton has only the
Python backend). The requests of a dynamic batch are stacked into one run, as the ONNX Runtime backend does.
"""

import itertools
import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(parameters.get("intra_op_threads", "0"))
        options.inter_op_num_threads = 1
        folder = os.path.join(args["model_repository"], args["model_version"])
        self.session = ort.InferenceSession(
            os.path.join(folder, "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [tensor["name"] for tensor in config["input"]]
        self.outputs = [tensor["name"] for tensor in config["output"]]

    def execute(self, requests):
        feeds = [
            {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs}
            for request in requests
        ]
        sizes = [len(feed[self.inputs[0]]) for feed in feeds]
        try:
            stacked = {name: np.concatenate([feed[name] for feed in feeds]) for name in self.inputs}
        except ValueError:  # requests of different shapes (unpadded texts) run one by one
            return [self._respond(self.session.run(self.outputs, feed)) for feed in feeds]
        results = self.session.run(self.outputs, stacked)
        bounds = np.cumsum([0, *sizes])
        return [self._respond([result[start:end] for result in results]) for start, end in itertools.pairwise(bounds)]

    def _respond(self, results):
        tensors = zip(self.outputs, results, strict=True)
        return pb_utils.InferenceResponse(
            [pb_utils.Tensor(name, np.ascontiguousarray(value)) for name, value in tensors]
        )
