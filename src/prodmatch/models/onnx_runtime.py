"""ONNX Runtime sessions: the default backend, running a bundle's graphs in this process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from prodmatch.config import RuntimeSettings
from prodmatch.errors import ModelUnavailableError

# Prefer accelerators when this onnxruntime build has them; CPU is always last and always present.
_PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
# The element types of ONNX graph inputs, as onnxruntime names them.
_NUMPY_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
}


def session_options(runtime: RuntimeSettings) -> ort.SessionOptions:
    """One pool of intra-op threads (a core each), no inter-op parallelism: the fastest setting for
    one batch at a time on a small CPU; more threads than cores only adds contention."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = runtime.intra_op_threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if runtime.spin_wait else "0")
    return options


def available_providers() -> list[str]:
    present = set(ort.get_available_providers())
    return [name for name in _PREFERRED_PROVIDERS if name in present]


class OnnxSession:
    """A ModelSession over one ONNX graph, created once; runs up to runtime.max_batch rows at a time."""

    pad_to_multiple_of = 1  # in process every shape is as cheap as any other: pad only to the longest text

    def __init__(self, graph: Path, runtime: RuntimeSettings | None = None) -> None:
        runtime = runtime or RuntimeSettings()
        self.graph = graph
        self.max_batch = runtime.max_batch
        self._session: ort.InferenceSession | None = ort.InferenceSession(
            str(graph), session_options(runtime), providers=available_providers()
        )
        self._output = self._session.get_outputs()[0].name
        try:
            self.inputs: Mapping[str, np.dtype[Any]] = {
                node.name: _NUMPY_TYPES[node.type] for node in self._session.get_inputs()
            }
        except KeyError as exc:
            raise ModelUnavailableError(f"{graph}: input type {exc.args[0]} is not one prodmatch sends") from exc

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        if self._session is None:
            raise RuntimeError(f"the session for {self.graph} is closed")
        output: np.ndarray = self._session.run([self._output], dict(inputs))[0]
        return output

    def health(self) -> str | None:
        return None  # an in-process model is ready once loaded

    def close(self) -> None:
        self._session = None  # onnxruntime frees a session's memory when the last reference goes
