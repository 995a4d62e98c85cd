"""Triton model repositories for a bundle: one model per tower (`<name>_image`, `<name>_text`).

Only the towers move to Triton. Tokenisation and image preprocessing stay in prodmatch: they are Python code
(ftfy cleaning, the BPE/WordPiece tokenizer, PIL decoding with JPEG draft mode) that Triton's ONNX Runtime and
TensorRT backends cannot run, and keeping them client-side means the server sees fixed-shape tensors it can
batch across requests. Each model's config carries the bundle fingerprint, so a client refuses a server that
would give vectors unlike the catalog's.

The configs are built as Triton's own ModelConfig protobuf (from `tritonclient`) and written in its text format,
so a misspelt field fails here instead of at the server.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from prodmatch.errors import ModelUnavailableError
from prodmatch.models.bundle import Bundle

if TYPE_CHECKING:
    from tritonclient.grpc import model_config_pb2

TOWERS = ("image", "text")
VERSION = "1"
FINGERPRINT_KEY = "prodmatch_fingerprint"
PYTHON_MODEL = Path(__file__).parent / "python_backend" / "model.py"
Backend = Literal["onnxruntime", "python", "tensorrt"]
Device = Literal["auto", "cpu", "gpu"]

_ONNX_TO_TRITON = {
    "tensor(float)": "TYPE_FP32",
    "tensor(float16)": "TYPE_FP16",
    "tensor(int64)": "TYPE_INT64",
    "tensor(int32)": "TYPE_INT32",
}
_MODEL_FILES: dict[Backend, str] = {"onnxruntime": "model.onnx", "python": "model.onnx", "tensorrt": "model.plan"}


def require_tritonclient() -> None:
    if importlib.util.find_spec("tritonclient") is None:
        raise ModelUnavailableError("Triton support needs the tritonclient package: pip install 'prodmatch[triton]'")


class RepositoryOptions(BaseModel):
    """How the Triton models are configured."""

    backend: Backend = "onnxruntime"
    max_batch: int = Field(32, ge=1, description="largest batch Triton forms or accepts")
    # Batch sizes the dynamic batcher waits to fill; empty: half and all of max_batch.
    preferred_batch: list[int] = []
    # How long a request may wait for company; a few hundred microseconds buys full batches under load
    # without adding noticeable latency to a lone request.
    queue_delay_us: int = Field(500, ge=0)
    instances: int = Field(1, ge=1, description="model instances per device")
    device: Device = "auto"
    intra_op_threads: int = Field(0, ge=0, description="Python backend only: ONNX Runtime threads (0 = all)")

    def preferred_sizes(self) -> list[int]:
        sizes = self.preferred_batch or [max(1, self.max_batch // 2), self.max_batch]
        return sorted({size for size in sizes if 1 <= size <= self.max_batch})


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: its name, Triton data type and shape without the batch dimension."""

    name: str
    data_type: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class TowerSignature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def tower_signature(graph: Path) -> TowerSignature:
    """Names, types and shapes read from the ONNX graph itself, so the config cannot drift from the bundle."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])

    def specs(nodes: Any) -> tuple[TensorSpec, ...]:
        # A named (symbolic) dimension is dynamic: -1 for Triton. The batch dimension is implicit.
        return tuple(
            TensorSpec(
                node.name, _triton_type(node.type), tuple(d if isinstance(d, int) else -1 for d in node.shape[1:])
            )
            for node in nodes
        )

    return TowerSignature(specs(session.get_inputs()), specs(session.get_outputs()))


def _triton_type(onnx_type: str) -> str:
    if onnx_type not in _ONNX_TO_TRITON:
        raise ModelUnavailableError(f"ONNX type {onnx_type} has no Triton mapping here")
    return _ONNX_TO_TRITON[onnx_type]


def tower_model_name(name: str, tower: str) -> str:
    return f"{name}_{tower}"


def model_config(
    model_name: str, signature: TowerSignature, options: RepositoryOptions, fingerprint: str
) -> model_config_pb2.ModelConfig:
    """The config.pbtxt content for one tower."""
    from tritonclient.grpc import model_config_pb2 as pb

    config = pb.ModelConfig(name=model_name, backend=options.backend, max_batch_size=options.max_batch)
    config.input.extend(_tensors(pb.ModelInput, signature.inputs))
    config.output.extend(_tensors(pb.ModelOutput, signature.outputs))
    config.dynamic_batching.preferred_batch_size.extend(options.preferred_sizes())
    config.dynamic_batching.max_queue_delay_microseconds = options.queue_delay_us
    config.instance_group.add(count=options.instances, kind=_instance_kind(options))
    config.parameters[FINGERPRINT_KEY].string_value = fingerprint
    if options.backend == "python":
        config.parameters["intra_op_threads"].string_value = str(options.intra_op_threads)
    return config


def _tensors(message: Any, specs: tuple[TensorSpec, ...]) -> list[Any]:
    from tritonclient.grpc import model_config_pb2 as pb

    return [message(name=s.name, data_type=pb.DataType.Value(s.data_type), dims=list(s.dims)) for s in specs]


def _instance_kind(options: RepositoryOptions) -> int:
    from tritonclient.grpc import model_config_pb2 as pb

    if options.backend == "tensorrt":
        kind = "KIND_GPU"  # a TensorRT plan only runs on the GPU it was built for
    elif options.backend == "python":
        kind = "KIND_CPU"  # model.py runs ONNX Runtime's CPU provider
    else:
        kind = {"auto": "KIND_AUTO", "cpu": "KIND_CPU", "gpu": "KIND_GPU"}[options.device]
    return int(pb.ModelInstanceGroup.Kind.Value(kind))


def config_text(config: model_config_pb2.ModelConfig) -> str:
    from google.protobuf import text_format

    return str(text_format.MessageToString(config))


def parse_config(text: str) -> model_config_pb2.ModelConfig:
    """A config.pbtxt read back into Triton's ModelConfig (raises on unknown fields or bad syntax)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    return text_format.Parse(text, pb.ModelConfig())


def write_triton_repository(
    bundle: Bundle, out: Path, options: RepositoryOptions, name: str | None = None
) -> list[Path]:
    """One model folder per tower under OUT (other models in OUT are left alone); returns the folders."""
    require_tritonclient()
    if options.backend == "tensorrt":
        raise ValueError("TensorRT plans are built by build_tensorrt_repository")
    base = name or bundle.manifest.name
    written = []
    for tower, graph in (("image", bundle.image_graph), ("text", bundle.text_graph)):
        model_name = tower_model_name(base, tower)
        config = model_config(model_name, tower_signature(graph), options, bundle.manifest.fingerprint)
        written.append(write_model(out, config, lambda folder, source=graph: _copy_model(source, folder, options)))
    return written


def _copy_model(graph: Path, version_folder: Path, options: RepositoryOptions) -> None:
    shutil.copyfile(graph, version_folder / _MODEL_FILES[options.backend])
    if options.backend == "python":
        shutil.copyfile(PYTHON_MODEL, version_folder / "model.py")


def write_model(out: Path, config: model_config_pb2.ModelConfig, fill_version: Any) -> Path:
    """Write one model folder via a staging folder, so a failed export never leaves a half model that Triton
    would try (and fail) to load; an existing model of the same name is replaced only on success."""
    folder = out / str(config.name)
    staging = out / f".{config.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / VERSION).mkdir(parents=True)
    try:
        fill_version(staging / VERSION)
        (staging / "config.pbtxt").write_text(config_text(config))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder
