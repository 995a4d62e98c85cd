"""Export a registry model to a self-contained ONNX bundle at fp32, fp16 or int8.

fp16 keeps float32 inputs/outputs (casts inside the graph) so callers never change. int8 follows the
tower's registry recipe (registry.Int8Recipe): ONNX Runtime's dynamic quantisation for transformer towers,
static QDQ quantisation calibrated on sample photos for convolution towers.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from prodmatch.errors import ProdmatchError
from prodmatch.models.bundle import IMAGE_GRAPH, TEXT_GRAPH, TOKENIZER_FILE, Bundle, Manifest, write_manifest
from prodmatch.models.preprocess import draft_side, open_image, to_tensor
from prodmatch.models.registry import Int8Recipe, ModelSpec, Precision, Preprocess

OPSET = 17


def export_bundle(
    spec: ModelSpec,
    precision: Precision,
    out_dir: Path,
    clip_weights: str,
    calibration_images: Sequence[Path] = (),
) -> Bundle:
    """Write the bundle for SPEC at PRECISION into OUT_DIR (replaced atomically) and return it."""
    import torch

    needs_calibration = precision == "int8" and "static" in (spec.image.int8.mode, spec.text.int8.mode)
    if needs_calibration and not calibration_images:
        raise ProdmatchError(
            f"int8 {spec.name} is calibrated on sample photos: give --calibration-images DIR "
            f"(a few dozen product photos like the catalog's)"
        )
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        from prodmatch.models.torch_towers import build_towers

        towers = build_towers(spec, clip_weights, staging / TOKENIZER_FILE)
        # The tracer warns about shape-dependent Python branches in transformers' code; those branches are
        # fixed for our input shapes, and the parity tests check the exported graphs against PyTorch.
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _export_image(towers.image, spec.image.preprocess.crop, staging / IMAGE_GRAPH)
            _export_text(towers.text, towers.text_input_names, staging / TEXT_GRAPH)
        calibration = _CalibrationPhotos(calibration_images, spec.image.preprocess) if needs_calibration else None
        _convert_precision(staging / IMAGE_GRAPH, precision, spec.image.int8, calibration)
        _convert_precision(staging / TEXT_GRAPH, precision, spec.text.int8, None)
        write_manifest(staging, Manifest.from_spec(spec, precision))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Bundle(out_dir)


def _export_image(tower: Any, size: int, path: Path) -> None:
    import torch

    example = torch.randn(2, 3, size, size)
    torch.onnx.export(
        tower,
        (example,),
        str(path),
        input_names=["pixel_values"],
        output_names=["embeddings"],
        dynamic_axes={"pixel_values": {0: "batch"}, "embeddings": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


def _export_text(tower: Any, input_names: list[str], path: Path) -> None:
    import torch

    example = tuple(torch.ones(2, 8, dtype=torch.int64) for _ in input_names)
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    torch.onnx.export(
        tower,
        example,
        str(path),
        input_names=input_names,
        output_names=["embeddings"],
        dynamic_axes={**axes, "embeddings": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


def _convert_precision(
    graph: Path, precision: Precision, recipe: Int8Recipe, calibration: _CalibrationPhotos | None
) -> None:
    if precision == "fp16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(graph)), keep_io_types=True)
        onnx.save(model, str(graph))
    elif precision == "int8" and recipe.mode == "static":
        if calibration is None:
            raise ProdmatchError("static int8 quantisation needs calibration photos")
        _quantise_static(graph, recipe, calibration)
    elif precision == "int8":
        _quantise_dynamic(graph, recipe)


def _nodes_matching(graph: Path, patterns: Sequence[str]) -> list[str]:
    import onnx

    return [node.name for node in onnx.load(str(graph)).graph.node if any(re.search(p, node.name) for p in patterns)]


def _quantise_dynamic(graph: Path, recipe: Int8Recipe) -> None:
    """int8 MatMul/Gemm weights (per channel), activations quantised per run; embedding tables stay fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantised = graph.with_suffix(".int8.onnx")
    quantize_dynamic(
        str(graph),
        str(quantised),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Gemm"],
        nodes_to_exclude=_nodes_matching(graph, recipe.keep_fp32),
        extra_options={"DefaultTensorType": 1},  # FLOAT: lets it type tensors shape inference missed
    )
    quantised.replace(graph)


class _CalibrationPhotos(CalibrationDataReader):  # type: ignore[misc]
    """Feeds preprocessed sample photos, one at a time, to ONNX Runtime's calibrator."""

    def __init__(self, paths: Sequence[Path], preprocess: Preprocess) -> None:
        self._pixels = to_tensor(
            [open_image(path, draft_short_side=draft_side(preprocess)) for path in paths], preprocess
        )
        self._rows: Iterator[np.ndarray] = iter(())
        self.rewind()

    def rewind(self) -> None:
        self._rows = iter(self._pixels[i : i + 1] for i in range(len(self._pixels)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        row = next(self._rows, None)
        return None if row is None else {"pixel_values": row}


def _quantise_static(graph: Path, recipe: Int8Recipe, calibration: _CalibrationPhotos) -> None:
    """QDQ int8 with per-channel weights and MinMax-calibrated activations."""
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_static

    prepared = graph.with_suffix(".pre.onnx")
    quant_pre_process(str(graph), str(prepared))
    keep = _nodes_matching(prepared, recipe.keep_fp32)
    calibration.rewind()
    quantised = graph.with_suffix(".int8.onnx")
    quantize_static(
        str(prepared),
        str(quantised),
        calibration,
        per_channel=True,
        nodes_to_exclude=keep,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    quantised.replace(graph)
    prepared.unlink()
