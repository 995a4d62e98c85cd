"""Triton model repositories and TensorRT plans: layout, configs read back through Triton's own ModelConfig
protobuf, and names/dims that match the bundle's graphs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from prodmatch.config import Settings
from prodmatch.errors import ModelUnavailableError
from prodmatch.models.bundle import Bundle
from prodmatch.models.factory import ensure_bundle
from prodmatch.models.triton.repository import (
    FINGERPRINT_KEY,
    RepositoryOptions,
    parse_config,
    write_model,
    write_triton_repository,
)
from prodmatch.models.triton.tensorrt import build_tensorrt_repository, trtexec_command


def export_cli(
    bundle: Bundle, out: Path, options: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`prodmatch model export BUNDLE --out OUT OPTIONS` (options space-separated)."""
    command = [sys.executable, "-m", "prodmatch", "model", "export", str(bundle.folder), "--out", str(out)]
    return subprocess.run([*command, *options.split()], capture_output=True, text=True, env=env)


def read_config(folder: Path) -> object:
    return parse_config((folder / "config.pbtxt").read_text())


def kind_name(config: object) -> str:
    from tritonclient.grpc import model_config_pb2 as pb

    return str(pb.ModelInstanceGroup.Kind.Name(config.instance_group[0].kind))  # type: ignore[attr-defined]


def type_name(value: int) -> str:
    from tritonclient.grpc import model_config_pb2 as pb

    return str(pb.DataType.Name(value))


def test_repository_has_one_model_per_tower_matching_the_bundle(offline_bundle: Bundle, tmp_path: Path) -> None:
    folders = write_triton_repository(offline_bundle, tmp_path, RepositoryOptions())
    name = offline_bundle.manifest.name
    assert [f.name for f in folders] == [f"{name}_image", f"{name}_text"]
    image, text = (read_config(folder) for folder in folders)
    assert (folders[0] / "1" / "model.onnx").read_bytes() == offline_bundle.image_graph.read_bytes()
    assert (folders[1] / "1" / "model.onnx").read_bytes() == offline_bundle.text_graph.read_bytes()
    assert image.backend == "onnxruntime" and image.max_batch_size == 32  # type: ignore[attr-defined]
    crop = offline_bundle.manifest.image.preprocess.crop
    assert [(i.name, type_name(i.data_type), list(i.dims)) for i in image.input] == [  # type: ignore[attr-defined]
        ("pixel_values", "TYPE_FP32", [3, crop, crop])
    ]
    text_inputs = [node.name for node in ort.InferenceSession(str(offline_bundle.text_graph)).get_inputs()]
    assert [(i.name, type_name(i.data_type), list(i.dims)) for i in text.input] == [  # type: ignore[attr-defined]
        (name, "TYPE_INT64", [-1]) for name in text_inputs
    ]
    for config, dims in ((image, offline_bundle.manifest.image.dims), (text, offline_bundle.manifest.text.dims)):
        assert [(o.name, list(o.dims)) for o in config.output] == [("embeddings", [dims])]  # type: ignore[attr-defined]
        assert list(config.dynamic_batching.preferred_batch_size) == [16, 32]  # type: ignore[attr-defined]
        assert config.dynamic_batching.max_queue_delay_microseconds == 500  # type: ignore[attr-defined]
        assert kind_name(config) == "KIND_AUTO"
        fingerprint = config.parameters[FINGERPRINT_KEY].string_value  # type: ignore[attr-defined]
        assert fingerprint == offline_bundle.manifest.fingerprint


def test_python_backend_options_reach_the_config(offline_bundle: Bundle, tmp_path: Path) -> None:
    options = RepositoryOptions(backend="python", max_batch=8, instances=2, queue_delay_us=100, intra_op_threads=1)
    folders = write_triton_repository(offline_bundle, tmp_path, options, name="shop")
    assert [f.name for f in folders] == ["shop_image", "shop_text"]
    config = read_config(folders[0])
    assert config.backend == "python" and config.max_batch_size == 8  # type: ignore[attr-defined]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]  # type: ignore[attr-defined]
    assert kind_name(config) == "KIND_CPU" and config.instance_group[0].count == 2  # type: ignore[attr-defined]
    assert config.parameters["intra_op_threads"].string_value == "1"  # type: ignore[attr-defined]
    assert (folders[0] / "1" / "model.py").is_file() and (folders[0] / "1" / "model.onnx").is_file()


def test_a_failed_export_keeps_the_previous_model(offline_bundle: Bundle, tmp_path: Path) -> None:
    (folder, _text) = write_triton_repository(offline_bundle, tmp_path, RepositoryOptions())
    (tmp_path / "other_model").mkdir()
    before = (folder / "config.pbtxt").read_text()

    def fail(version_folder: Path) -> None:
        (version_folder / "model.onnx").write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_model(tmp_path, read_config(folder), fail)
    assert (folder / "config.pbtxt").read_text() == before
    assert (folder / "1" / "model.onnx").read_bytes() == offline_bundle.image_graph.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([folder.name, _text.name, "other_model"])


def test_cli_exports_a_triton_repository(offline_bundle: Bundle, tmp_path: Path) -> None:
    result = export_cli(offline_bundle, tmp_path / "repo", "--format triton --max-batch 16 --device gpu --instances 2")
    assert result.returncode == 0, result.stderr
    config = read_config(tmp_path / "repo" / f"{offline_bundle.manifest.name}_image")
    assert config.max_batch_size == 16 and kind_name(config) == "KIND_GPU"  # type: ignore[attr-defined]


def test_cli_rejects_unknown_triton_options(offline_bundle: Bundle, tmp_path: Path) -> None:
    result = export_cli(offline_bundle, tmp_path / "repo", "--format triton --backend tensorflow")
    assert result.returncode == 2 and "backend" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "repo").exists()


# --- TensorRT: trtexec cannot run here (no GPU, no TensorRT); its absence, its command and its config are tested.


def test_tensorrt_without_trtexec_fails_clearly_and_writes_nothing(offline_bundle: Bundle, tmp_path: Path) -> None:
    result = export_cli(
        offline_bundle,
        tmp_path / "repo",
        "--format tensorrt --precision fp16",
        env={**os.environ, "PATH": "/usr/bin:/bin", "COLUMNS": "300"},
    )
    assert result.returncode == 2, result.stderr
    assert "trtexec is not on PATH" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())


def test_trtexec_command_has_dynamic_shape_profiles(offline_bundle: Bundle, tmp_path: Path) -> None:
    from prodmatch.models.triton.repository import tower_signature

    options = RepositoryOptions(max_batch=64)
    crop = offline_bundle.manifest.image.preprocess.crop
    image = trtexec_command(
        "trtexec", Path("i.onnx"), Path("i.plan"), tower_signature(offline_bundle.image_graph), options, "fp16", 77
    )
    assert image[:3] == ["trtexec", "--onnx=i.onnx", "--saveEngine=i.plan"]
    assert f"--minShapes=pixel_values:1x3x{crop}x{crop}" in image
    assert f"--optShapes=pixel_values:64x3x{crop}x{crop}" in image
    assert f"--maxShapes=pixel_values:64x3x{crop}x{crop}" in image
    assert "--fp16" in image and "--int8" not in image
    text = trtexec_command(
        "trtexec", Path("t.onnx"), Path("t.plan"), tower_signature(offline_bundle.text_graph), options, "fp32", 128
    )
    assert "--minShapes=input_ids:1x1,attention_mask:1x1,token_type_ids:1x1" in text
    assert "--maxShapes=input_ids:64x128,attention_mask:64x128,token_type_ids:64x128" in text
    assert "--fp16" not in text
    with pytest.raises(ModelUnavailableError, match="calibration cache"):
        trtexec_command(
            "trtexec", Path("t.onnx"), Path("t.plan"), tower_signature(offline_bundle.text_graph), options, "int8", 128
        )
    int8 = trtexec_command(
        "trtexec",
        Path("t.onnx"),
        Path("t.plan"),
        tower_signature(offline_bundle.text_graph),
        options,
        "int8",
        128,
        Path("calib.cache"),
    )
    assert "--int8" in int8 and "--calib=calib.cache" in int8


def test_tensorrt_repository_with_a_stand_in_trtexec(offline_bundle: Bundle, tmp_path: Path) -> None:
    """A stand-in trtexec (the real one needs a GPU) that records its arguments and writes the plan file:
    the repository around the plans, and the configs for Triton's TensorRT backend, are prodmatch's part."""
    fake = tmp_path / "trtexec"
    fake.write_text(
        '#!/bin/sh\necho "$@" >> "$(dirname "$0")/calls"\nfor a; do case $a in --saveEngine=*) '
        'echo plan > "${a#--saveEngine=}";; esac; done\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    folders = build_tensorrt_repository(offline_bundle, tmp_path / "repo", RepositoryOptions(), "fp16", trtexec=fake)
    assert len((tmp_path / "calls").read_text().splitlines()) == 2
    for folder, dims in zip(
        folders, (offline_bundle.manifest.image.dims, offline_bundle.manifest.text.dims), strict=True
    ):
        config = read_config(folder)
        assert config.backend == "tensorrt" and kind_name(config) == "KIND_GPU"  # type: ignore[attr-defined]
        assert [list(o.dims) for o in config.output] == [[dims]]  # type: ignore[attr-defined]
        assert (folder / "1" / "model.plan").read_text() == "plan\n"
    fake.write_text("#!/bin/sh\necho 'Error: unsupported op' >&2\nexit 1\n")
    with pytest.raises(ModelUnavailableError, match="unsupported op"):
        build_tensorrt_repository(offline_bundle, tmp_path / "repo", RepositoryOptions(), "fp16", trtexec=fake)
    assert (folders[0] / "1" / "model.plan").read_text() == "plan\n"  # the failed rebuild replaced nothing


@pytest.mark.slow  # exports a real bundle
def test_tensorrt_needs_the_fp32_bundle(base_settings: Settings, tmp_path: Path) -> None:
    fp16 = ensure_bundle("offline-effnet-minilm", base_settings, "fp16")
    with pytest.raises(ModelUnavailableError, match="fp32"):
        build_tensorrt_repository(fp16, tmp_path, RepositoryOptions(), "fp16", trtexec=Path("/bin/true"))
