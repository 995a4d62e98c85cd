"""Export a registry model to a self-contained ONNX bundle at fp32, fp16 or int8.

fp16 keeps float32 inputs/outputs (casts inside the graph) so callers never change. int8 follows the
tower's registry setting: "dynamic" is ONNX Runtime's dynamic quantisation (int8 weights per channel,
activations quantised per batch at run time; no calibration set); "weights" stores int8 per-channel
weights that are dequantised once when the session loads, for convolution towers whose int8 activations
lose too much (EfficientNet-lite0 with static int8 activations kept the fp32 top-1 neighbour for only
~91% of myntra-dev images).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from prodmatch.models.bundle import IMAGE_GRAPH, TEXT_GRAPH, TOKENIZER_FILE, Bundle, Manifest, write_manifest
from prodmatch.models.registry import Int8Mode, ModelSpec, Precision

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
        _convert_precision(staging / IMAGE_GRAPH, precision, spec.image.int8)
        _convert_precision(staging / TEXT_GRAPH, precision, spec.text.int8)
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


def _convert_precision(graph: Path, precision: Precision, int8_mode: Int8Mode) -> None:
    if precision == "fp16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(graph)), keep_io_types=True)
        onnx.save(model, str(graph))
    elif precision == "int8" and int8_mode == "weights":
        quantise_weights(graph)
    elif precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantised = graph.with_suffix(".int8.onnx")
        quantize_dynamic(
            str(graph), str(quantised), weight_type=QuantType.QInt8, per_channel=True,
            extra_options={"DefaultTensorType": 1},  # FLOAT: lets it type tensors shape inference missed
        )
        quantised.replace(graph)


def quantise_weights(graph: Path) -> None:
    """Replace every Conv/Gemm/MatMul weight initializer by int8 values, a per-output-channel scale and a
    DequantizeLinear node: a quarter of the size, fp32 arithmetic."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(graph))
    weight_names = {node.input[1] for node in model.graph.node if node.op_type in ("Conv", "Gemm", "MatMul")}
    kept, added_nodes = [], []
    for initializer in model.graph.initializer:
        weights = numpy_helper.to_array(initializer)
        if initializer.name not in weight_names or weights.ndim < 2 or weights.dtype != np.float32:
            kept.append(initializer)
            continue
        axis = 0 if weights.ndim > 2 else 1  # Conv: output channels first; MatMul/Gemm (K, N): columns
        reduce_axes = tuple(i for i in range(weights.ndim) if i != axis)
        scale = (np.abs(weights).max(axis=reduce_axes) / 127.0).astype(np.float32)
        scale[scale == 0] = 1.0
        shape = [-1 if i == axis else 1 for i in range(weights.ndim)]
        quantised = np.clip(np.rint(weights / scale.reshape(shape)), -127, 127).astype(np.int8)
        name = initializer.name
        kept += [numpy_helper.from_array(quantised, f"{name}_int8"), numpy_helper.from_array(scale, f"{name}_scale"),
                 numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), f"{name}_zero")]
        added_nodes.append(helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero"],
                                            [name], axis=axis, name=f"{name}_dequantize"))
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    nodes = added_nodes + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(graph))
