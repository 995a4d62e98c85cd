"""TensorRT plans for Triton, built by NVIDIA's `trtexec` on the GPU host that will serve them.

A plan is specific to the GPU model and TensorRT version that built it, so it is built where it runs; prodmatch
only writes the command and the Triton config around it. The source is always the fp32 ONNX graph: TensorRT
chooses fp16/int8 kernels itself (`--fp16`, `--int8`), which is more accurate than feeding it a graph that
ONNX Runtime already quantised (its dynamic-quantisation ops are not TensorRT ops anyway).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from prodmatch.errors import ModelUnavailableError
from prodmatch.models.bundle import Bundle
from prodmatch.models.triton.repository import (
    RepositoryOptions,
    TensorSpec,
    TowerSignature,
    model_config,
    require_tritonclient,
    tower_model_name,
    tower_signature,
    write_model,
)

TensorrtPrecision = Literal["fp32", "fp16", "int8"]
Runner = Callable[[Sequence[str]], None]


def find_trtexec(explicit: Path | None = None) -> str:
    """The trtexec executable, or a clear error saying where it comes from."""
    if explicit is not None:
        if not explicit.is_file():
            raise ModelUnavailableError(f"trtexec not found at {explicit}")
        return str(explicit)
    found = shutil.which("trtexec")
    if found is None:
        raise ModelUnavailableError(
            "trtexec is not on PATH: TensorRT plans are built on the GPU host that serves them (trtexec ships "
            "with TensorRT, e.g. in NVIDIA's tritonserver and tensorrt containers at /usr/src/tensorrt/bin); "
            "pass --trtexec PATH, or export --format triton to serve the ONNX graphs instead"
        )
    return found


def shape_profile(inputs: Sequence[TensorSpec], batch: int, sequence: int) -> str:
    """trtexec's NAME:BxDxD list for one profile point; a dynamic (sequence) dimension takes SEQUENCE."""
    return ",".join(
        f"{spec.name}:" + "x".join(str(d) for d in (batch, *(sequence if d == -1 else d for d in spec.dims)))
        for spec in inputs
    )


def trtexec_command(
    trtexec: str,
    onnx_graph: Path,
    plan: Path,
    signature: TowerSignature,
    options: RepositoryOptions,
    precision: TensorrtPrecision,
    max_sequence: int,
    calibration_cache: Path | None = None,
) -> list[str]:
    """The trtexec call building PLAN with one optimisation profile: batch 1 to max_batch, tuned for the
    largest preferred batch; texts come padded to MAX_SEQUENCE (the client pads them so they batch together)."""
    optimal = options.preferred_sizes()[-1]
    command = [
        trtexec,
        f"--onnx={onnx_graph}",
        f"--saveEngine={plan}",
        f"--minShapes={shape_profile(signature.inputs, 1, 1)}",
        f"--optShapes={shape_profile(signature.inputs, optimal, max_sequence)}",
        f"--maxShapes={shape_profile(signature.inputs, options.max_batch, max_sequence)}",
        "--skipInference",
    ]
    if precision in ("fp16", "int8"):
        command.append("--fp16")  # int8 layers TensorRT cannot quantise fall back to fp16, not fp32
    if precision == "int8":
        if calibration_cache is None:
            raise ModelUnavailableError(
                "TensorRT int8 needs a calibration cache (--calibration-cache FILE, made with TensorRT's "
                "calibrator on sample photos); without one trtexec uses placeholder ranges and the vectors are wrong"
            )
        command += ["--int8", f"--calib={calibration_cache}"]
    return command


def run_trtexec(command: Sequence[str]) -> None:
    result = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ModelUnavailableError(f"trtexec failed (exit {result.returncode}):\n{tail}")


def build_tensorrt_repository(
    bundle: Bundle,
    out: Path,
    options: RepositoryOptions,
    precision: TensorrtPrecision,
    name: str | None = None,
    trtexec: Path | None = None,
    calibration_cache: Path | None = None,
    runner: Runner = run_trtexec,
) -> list[Path]:
    """A TensorRT model per tower under OUT. BUNDLE must be the fp32 bundle; its fingerprint goes into the
    configs, so the catalog must have been built with that bundle."""
    require_tritonclient()
    if bundle.manifest.precision != "fp32":
        raise ModelUnavailableError(f"TensorRT plans are built from the fp32 bundle, not {bundle.manifest.precision}")
    executable = find_trtexec(trtexec)
    options = options.model_copy(update={"backend": "tensorrt"})
    base = name or bundle.manifest.name
    written = []
    for tower, graph in (("image", bundle.image_graph), ("text", bundle.text_graph)):
        signature = tower_signature(graph)
        config = model_config(tower_model_name(base, tower), signature, options, bundle.manifest.fingerprint)

        def build(folder: Path, graph: Path = graph, signature: TowerSignature = signature) -> None:
            runner(
                trtexec_command(
                    executable,
                    graph,
                    folder / "model.plan",
                    signature,
                    options,
                    precision,
                    bundle.manifest.text.max_length,
                    calibration_cache,
                )
            )

        written.append(write_model(out, config, build))
    return written
