"""Export a registry model to a self-contained ONNX bundle at fp32, fp16 or int8.

fp16 keeps float32 inputs/outputs (casts inside the graph) so callers never change; int8 is ONNX Runtime's
dynamic quantisation (int8 weights per channel, activations quantised per batch at run time), which needs
no calibration set and keeps CLIP/MiniLM/EfficientNet embeddings within the parity bounds in tests.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from prodmatch.models.bundle import IMAGE_GRAPH, TEXT_GRAPH, TOKENIZER_FILE, Bundle, Manifest, write_manifest
from prodmatch.models.registry import ModelSpec, Precision

OPSET = 17


def export_bundle(spec: ModelSpec, precision: Precision, out_dir: Path, clip_weights: str) -> Bundle:
    """Write the bundle for SPEC at PRECISION into OUT_DIR (replaced atomically) and return it."""
    import torch

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        from prodmatch.models.torch_towers import build_towers

        towers = build_towers(spec, clip_weights, staging / TOKENIZER_FILE)
        with torch.inference_mode():
            _export_image(towers.image, spec.image.preprocess.crop, staging / IMAGE_GRAPH)
            _export_text(towers.text, towers.text_input_names, staging / TEXT_GRAPH)
        for graph in (staging / IMAGE_GRAPH, staging / TEXT_GRAPH):
            _convert_precision(graph, precision)
        write_manifest(staging, Manifest.from_spec(spec, precision))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Bundle(out_dir)


def _export_image(tower: object, size: int, path: Path) -> None:
    import torch

    example = torch.randn(2, 3, size, size)
    torch.onnx.export(
        tower, (example,), str(path), input_names=["pixel_values"], output_names=["embeddings"],
        dynamic_axes={"pixel_values": {0: "batch"}, "embeddings": {0: "batch"}},
        opset_version=OPSET, dynamo=False,
    )


def _export_text(tower: object, input_names: list[str], path: Path) -> None:
    import torch

    example = tuple(torch.ones(2, 8, dtype=torch.int64) for _ in input_names)
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    torch.onnx.export(
        tower, example, str(path), input_names=input_names, output_names=["embeddings"],
        dynamic_axes={**axes, "embeddings": {0: "batch"}}, opset_version=OPSET, dynamo=False,
    )


def _convert_precision(graph: Path, precision: Precision) -> None:
    if precision == "fp16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(graph)), keep_io_types=True)
        onnx.save(model, str(graph))
    elif precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantised = graph.with_suffix(".int8.onnx")
        quantize_dynamic(
            str(graph), str(quantised), weight_type=QuantType.QInt8, per_channel=True,
            extra_options={"DefaultTensorType": 1},  # FLOAT: lets it type tensors shape inference missed
        )
        quantised.replace(graph)
