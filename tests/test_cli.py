"""The command line. Fast tier: `prodmatch ...` run in this process through its real entry point (parsing, exit
codes, one-line errors, JSON output), with the fake model (tests/fakes.py) as the catalog's model. Slow tier: the
same commands as a user runs them, in a subprocess, with the real offline model."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prodmatch import cli as prodmatch_cli
from prodmatch.cli import common as cli_common
from prodmatch.composition import open_catalog
from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle
from tests.fakes import FakeEmbedders


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


Prodmatch = Callable[..., Run]


@pytest.fixture
def prodmatch(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    fake_embedders: FakeEmbedders,
) -> Prodmatch:
    """prodmatch(*ARGS): `prodmatch ARGS` through its entry point in this process, on this test's data dir, every
    catalog it opens running the fake model. The CLI has no seam for the model, so its one way of opening a catalog
    (cli.common.open_catalog) is given the fake's factory."""
    monkeypatch.setenv("PRODMATCH_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PRODMATCH_MODELS_DIR", str(settings.models_dir))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(cli_common, "open_catalog", functools.partial(open_catalog, embedders=fake_embedders))

    def run(*args: str) -> Run:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["prodmatch", *args])
        sigterm = signal.getsignal(signal.SIGTERM)  # main() installs its own handler
        try:
            prodmatch_cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        finally:
            signal.signal(signal.SIGTERM, sigterm)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def electronics(shared_data: Path, prodmatch: Prodmatch, fake_bundle: Bundle) -> Path:
    """electronics-small (10 products, absolute image paths from another machine) ingested with the fake model."""
    catalog = shared_data / "electronics-small" / "metadata.json"
    run = prodmatch("ingest", str(catalog), "--model", str(fake_bundle.folder), "--json")
    assert run.code == 0, run.stderr
    report = run.json()
    assert (report["added"], report["rejected"]) == (10, [])
    return catalog


def test_ingest_reports_what_it_did_and_a_rerun_changes_nothing(
    electronics: Path, prodmatch: Prodmatch, fake_bundle: Bundle, fake_embedders: FakeEmbedders
) -> None:
    models_loaded = len(fake_embedders.made)
    rerun = prodmatch("ingest", str(electronics), "--model", str(fake_bundle.folder), "--json")
    assert rerun.code == 0 and "ingesting into the catalog in" in rerun.stderr
    report = rerun.json()
    assert (report["added"], report["updated"], report["unchanged"], report["images"]) == (0, 0, 10, 0)
    assert len(fake_embedders.made) == models_loaded  # nothing re-embedded nor recalibrated: no model even loaded
    table = prodmatch("ingest", str(electronics))
    assert table.code == 0 and "added 0 · updated 0 · unchanged 10" in table.stdout


def test_match_json_is_the_documented_contract(electronics: Path, prodmatch: Prodmatch, fake_bundle: Bundle) -> None:
    run = prodmatch("match", "--text", "Adidas Puffer Jacket (Black)", "--top-k", "3", "--json")
    assert run.code == 0, run.stderr
    out = run.json()
    assert set(out) == {"query_id", "matches", "model", "took_ms", "decision", "keywords", "box"}  # as the API
    assert out["model"] == fake_bundle.manifest.name and isinstance(out["took_ms"], float)
    assert [set(m) for m in out["matches"]] == [{"id", "score", "product"}] * 3
    first = out["matches"][0]
    assert first["id"] == "7" and first["product"]["name"] == "Adidas Puffer Jacket (Black)"
    assert first["product"]["price"] == 99.99  # numbers stay numbers
    assert first["product"]["SKU"] == "SKU-ADIDAS-PUFFERJACKET-BLACK"


def test_match_by_image_with_a_numeric_filter(electronics: Path, prodmatch: Prodmatch) -> None:
    photo = electronics.parent / "images" / "Adidas-1.jpg"
    unfiltered = prodmatch("match", "--image", str(photo), "--json").json()
    assert unfiltered["matches"][0]["id"] == "7"  # its own photo
    out = prodmatch("match", "--image", str(photo), "--filter", "price<=50", "--json").json()
    assert {m["id"] for m in out["matches"]} == {"8", "9", "10"}  # the three shirts, and only them
    table = prodmatch("match", "--image", str(photo), "--top-k", "2")
    assert table.code == 0 and "2 matches" in table.stdout and "Adidas Puffer Jacket" in table.stdout


def test_match_profile_shows_milliseconds_per_stage(electronics: Path, prodmatch: Prodmatch) -> None:
    photo = electronics.parent / "images" / "Adidas-1.jpg"
    out = prodmatch("match", "--image", str(photo), "--profile", "--json").json()
    assert list(out["timings"]) == ["decode", "preprocess", "model", "verify", "search", "decide", "log"]
    printed = prodmatch("match", "--text", "sony headphones", "--profile")
    assert printed.code == 0 and "ms per stage: model" in printed.stderr
    assert "timings" not in prodmatch("match", "--text", "sony headphones", "--json").json()


def test_products_stats_and_log_commands(electronics: Path, prodmatch: Prodmatch, fake_bundle: Bundle) -> None:
    listing = prodmatch("products", "list", "--filter", "brand=Sony", "--json").json()
    assert listing["total"] == 4 and {item["brand"] for item in listing["items"]} == {"Sony"}
    paged = prodmatch("products", "list", "--limit", "3", "--offset", "8", "--json").json()
    assert paged["total"] == 10 and len(paged["items"]) == 2
    shown = prodmatch("products", "show", "1").json()
    assert shown["id"] == "1" and shown["SKU"] == "SKU-SONY-WH1000XM5-BEIGE"
    deleted = prodmatch("products", "delete", "1")
    assert deleted.code == 0 and "deleted 1" in deleted.stdout
    stats = prodmatch("stats", "--json").json()
    assert stats["products"] == 9 and stats["model"]["fingerprint"] == fake_bundle.manifest.fingerprint
    assert stats["indexes"] == {"image": {"kind": "flat", "vectors": 9}, "text": {"kind": "flat", "vectors": 9}}
    assert stats["disk_bytes"]["metadata.db"] > 0
    missing = prodmatch("products", "show", "1")
    assert missing.code == 2 and "no product with id '1'" in missing.stderr and missing.stdout == ""

    answer = prodmatch("match", "--text", "sony headphones", "--json").json()
    logged = prodmatch("log", "tail", "-n", "5", "--json").json()
    assert [entry["query_id"] for entry in logged] == [answer["query_id"]]  # the CLI's queries are logged too
    assert logged[0]["modality"] == "text" and logged[0]["top_ids"] == [m["id"] for m in answer["matches"]]


def test_user_errors_exit_2_with_one_line_and_no_traceback(
    electronics: Path, prodmatch: Prodmatch, tmp_path: Path
) -> None:
    bogus = tmp_path / "bogus.jpg"
    bogus.write_bytes(b"not a photo")
    cases = [
        (("match", "--text", "shirt", "--data-dir", str(tmp_path / "none")), "no catalog in"),
        (("match", "--text", "a", "--image", "b.jpg"), "exactly one of --image or --text"),
        (("match", "--image", str(bogus)), "not a decodable image"),
        (("match", "--image", str(tmp_path / "absent.jpg")), "cannot open"),
        (("match", "--text", "shirt", "--filter", "size=M"), "unknown filter key 'size'"),
        (("match", "--text", "shirt", "--filter", "price>="), "filter"),
        (("match", "--text", "shirt", "--top-k", "0"), "top_k must be between 1 and 1000"),
        (("match", "--text", "   "), "text is empty"),
        (("products", "delete", "nope"), "no product with id 'nope'"),
        (("ingest", str(tmp_path / "absent.csv")), "absent.csv"),
        (("keys", "create", "--scope", "root"), "--scope must be one of: match, admin"),
    ]
    for args, message in cases:
        run = prodmatch(*args)
        assert run.code == 2, (args, run.stderr)
        assert message in run.stderr and "Traceback" not in run.stderr, (args, run.stderr)


def test_a_catalog_refuses_another_model(electronics: Path, prodmatch: Prodmatch, fake_shared_bundle: Bundle) -> None:
    run = prodmatch("ingest", str(electronics), "--model", str(fake_shared_bundle.folder))
    assert run.code == 2 and "cannot be mixed" in run.stderr
    assert prodmatch("stats", "--json").json()["model"]["name"] == "fake-pixels-words"


def test_keys_are_shown_once_listed_without_secrets_and_revoked(electronics: Path, prodmatch: Prodmatch) -> None:
    made = prodmatch("keys", "create", "--scope", "admin", "--name", "ops", "--json").json()
    assert made["scope"] == "admin" and made["key"].startswith(f"pm_{made['id']}_")
    listed = prodmatch("keys", "list", "--json")
    assert made["key"] not in listed.stdout and made["key"].split("_")[-1] not in listed.stdout
    assert [(k["id"], k["name"], k["revoked_at"]) for k in listed.json()] == [(made["id"], "ops", None)]
    assert prodmatch("keys", "revoke", made["id"]).code == 0
    assert prodmatch("keys", "list", "--json").json()[0]["revoked_at"] is not None
    again = prodmatch("keys", "revoke", made["id"])
    assert again.code == 2 and "no active API key" in again.stderr


def test_eval_rejects_an_unknown_query_kind_before_doing_anything(prodmatch: Prodmatch, tmp_path: Path) -> None:
    run = prodmatch("eval", str(tmp_path / "catalog.csv"), "--queries", "sounds")
    assert run.code == 2 and "--queries must be one of: image, text, both" in run.stderr


# The slow tier: a real `prodmatch` process and the real offline model, as a user runs them.


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "prodmatch", *args], env=env, capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"prodmatch {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def test_a_user_ingests_and_matches_with_the_offline_model(
    shared_data: Path, cli_env: dict[str, str], offline_bundle: Bundle
) -> None:
    catalog = shared_data / "electronics-small" / "metadata.json"
    report = json.loads(cli(cli_env, "ingest", str(catalog), "--model", "offline-effnet-minilm", "--json").stdout)
    assert report["added"] == 10 and report["rejected"] == []
    out = json.loads(cli(cli_env, "match", "--text", "noise cancelling headphones", "--top-k", "3", "--json").stdout)
    assert out["model"] == "offline-effnet-minilm" and len(out["matches"]) == 3
    assert all("Sony" in m["product"]["name"] for m in out["matches"])  # the real text model understands it
    photo = catalog.parent / "images" / "Test_image.jpg"
    out = json.loads(cli(cli_env, "match", "--image", str(photo), "--filter", "price<=100", "--json").stdout)
    assert out["matches"] and all(m["product"]["price"] <= 100 for m in out["matches"])
    stats = json.loads(cli(cli_env, "stats", "--json").stdout)
    assert stats["indexes"]["image"] == {"kind": "flat", "vectors": 10} and stats["model"]["spaces"]["image"] == 1280


@pytest.mark.slow  # imports the export stack (transformers) to see which weights can be had
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
    assert not (tmp_path / "b").exists()


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
