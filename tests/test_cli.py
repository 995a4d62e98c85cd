"""The command line, run as a user runs it (a subprocess), against real bundles and catalogs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prodmatch.models.bundle import Bundle


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "prodmatch", *args], env=env, capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"prodmatch {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.fixture
def electronics_dir(shared_data: Path, cli_env: dict[str, str], offline_bundle: Bundle) -> Path:
    catalog = shared_data / "electronics-small" / "metadata.json"
    report = json.loads(cli(cli_env, "ingest", str(catalog), "--model", "offline-effnet-minilm", "--json").stdout)
    assert report["added"] == 10 and report["rejected"] == []
    return catalog


def test_match_json_is_the_documented_contract(electronics_dir: Path, cli_env: dict[str, str]) -> None:
    out = json.loads(cli(cli_env, "match", "--text", "noise cancelling headphones", "--top-k", "3", "--json").stdout)
    assert set(out) == {"matches", "model", "took_ms"}
    assert out["model"] == "offline-effnet-minilm" and isinstance(out["took_ms"], float)
    assert len(out["matches"]) == 3
    first = out["matches"][0]
    assert set(first) == {"id", "score", "product"} and isinstance(first["id"], str)
    assert isinstance(first["score"], float) and "Sony" in first["product"]["name"]
    assert first["product"]["price"] == 399.99  # numbers stay numbers


def test_match_by_image_with_a_numeric_filter(electronics_dir: Path, cli_env: dict[str, str]) -> None:
    photo = electronics_dir.parent / "images" / "Test_image.jpg"
    out = json.loads(cli(cli_env, "match", "--image", str(photo), "--filter", "price<=100", "--json").stdout)
    assert out["matches"] and all(m["product"]["price"] <= 100 for m in out["matches"])


def test_products_and_stats_commands(electronics_dir: Path, cli_env: dict[str, str]) -> None:
    listing = json.loads(cli(cli_env, "products", "list", "--filter", "brand=Sony", "--json").stdout)
    assert listing["total"] == 4 and {item["brand"] for item in listing["items"]} == {"Sony"}
    shown = json.loads(cli(cli_env, "products", "show", "1").stdout)
    assert shown["id"] == "1" and shown["SKU"] == "SKU-SONY-WH1000XM5-BEIGE"
    cli(cli_env, "products", "delete", "1")
    stats = json.loads(cli(cli_env, "stats", "--json").stdout)
    assert stats["products"] == 9 and stats["model"]["name"] == "offline-effnet-minilm"
    assert stats["indexes"]["image"] == {"kind": "flat", "vectors": 9}
    assert stats["disk_bytes"]["metadata.db"] > 0
    missing = cli(cli_env, "products", "show", "1", check=False)
    assert missing.returncode == 2 and "no product with id '1'" in missing.stderr


def test_user_errors_exit_2_with_one_line_and_no_traceback(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = cli(cli_env, "match", "--text", "shirt", "--data-dir", str(tmp_path / "none"), check=False)
    assert result.returncode == 2 and "no catalog in" in result.stderr and "Traceback" not in result.stderr
    both = cli(cli_env, "match", "--text", "a", "--image", "b.jpg", check=False)
    assert both.returncode == 2 and "exactly one of --image or --text" in both.stderr


def test_bad_query_photo_is_a_clear_error(electronics_dir: Path, cli_env: dict[str, str], tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.jpg"
    bogus.write_bytes(b"not a photo")
    result = cli(cli_env, "match", "--image", str(bogus), check=False)
    assert result.returncode == 2 and "not a decodable image" in result.stderr


def test_model_list_labels_the_random_model_and_explains_missing_clip(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    rows = {row["name"]: row for row in json.loads(cli(env, "model", "list", "--json").stdout)}
    assert rows["clip-vit-b-32-random"]["for_matching"] is False
    assert rows["offline-effnet-minilm"]["available"] is True
    assert rows["clip-vit-b-32"]["available"] is False
    assert "PRODMATCH_CLIP_WEIGHTS" in rows["clip-vit-b-32"]["reason"]
    table = cli(env, "model", "list").stdout
    assert "TEST ONLY" in table
    export = cli(env, "model", "export", "clip-vit-b-32", "--out", str(tmp_path / "b"), check=False)
    assert export.returncode == 2 and "PRODMATCH_CLIP_WEIGHTS" in export.stderr and "Traceback" not in export.stderr


def test_model_bench_reports_both_towers(offline_bundle: Bundle, cli_env: dict[str, str]) -> None:
    out = json.loads(
        cli(
            cli_env,
            "model",
            "bench",
            str(offline_bundle.folder),
            "--batch",
            "1,2",
            "--repeats",
            "1",
            "--backends",
            "onnx",
            "--json",
        ).stdout
    )
    rows = {(row["tower"], row["batch"]): row for row in out["rows"]}
    assert set(rows) == {("image", 1), ("image", 2), ("text", 1), ("text", 2)}
    assert all(row["items_per_s"] > 0 and row["precision"] == "fp32" for row in rows.values())
    assert out["decode"]["full_decode_ms"] > 0 and out["machine"]["cores"] >= 1
