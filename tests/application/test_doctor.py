"""`prodmatch doctor`: a healthy catalog passes every check; each broken case (no data dir, PostgreSQL not
listening, bundle gone, index out of step with the metadata store) is a problem with its fix, and exit code 1.
The fake model (tests/fakes.py) stands in for the real one; the CLI runs through its real entry point."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from prodmatch import cli as prodmatch_cli
from prodmatch.application import doctor as doctor_module
from prodmatch.application.doctor import diagnose
from prodmatch.composition import open_catalog
from prodmatch.config import Settings
from prodmatch.models.record import MODEL_KEY
from prodmatch.stores.factory import open_metadata_store, open_vector_index
from tests.api.server import free_port
from tests.fakes import FakeEmbedders


def run_doctor(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], embedders: FakeEmbedders, *args: str
) -> tuple[int, str]:
    """`prodmatch ARGS doctor --json` through main(), its catalog's model the fake one; (exit code, stdout)."""
    monkeypatch.setattr(
        "prodmatch.cli.doctor.diagnose", lambda settings: doctor_module.diagnose(settings, embedders=embedders)
    )
    monkeypatch.setattr(sys, "argv", ["prodmatch", *args, "doctor", "--json"])
    sigterm = signal.getsignal(signal.SIGTERM)
    capsys.readouterr()
    try:
        prodmatch_cli.main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    return code, capsys.readouterr().out


def problems(output: str) -> dict[str, str]:
    """Each failed check's name -> its detail and fix."""
    report = json.loads(output)
    return {c["name"]: f"{c['detail']} | {c['fix']}" for c in report["checks"] if not c["ok"]}


def test_a_healthy_catalog_passes_every_check(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> None:
    checks = diagnose(fake_myntra, embedders=fake_embedders)
    assert [c.name for c in checks] == [
        "data dir",
        "disk space",
        "metadata",
        "vectors (image)",
        "vectors (text)",
        "model",
    ]
    assert all(c.ok for c in checks), checks
    assert "250 products" in checks[2].detail and "250 vectors" in checks[3].detail
    assert fake_embedders.last.count("text") == 1  # the model was loaded and run once


def test_healthy_exits_0_and_a_missing_data_dir_exits_1_with_the_fix(
    fake_myntra: Settings,
    fake_embedders: FakeEmbedders,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("PRODMATCH_DATA_DIR", str(fake_myntra.data_dir))
    code, output = run_doctor(monkeypatch, capsys, fake_embedders)
    assert code == 0 and json.loads(output)["ok"] is True
    monkeypatch.setenv("PRODMATCH_DATA_DIR", str(tmp_path / "nowhere"))
    code, output = run_doctor(monkeypatch, capsys, fake_embedders)
    assert code == 1
    assert "does not exist" in problems(output)["data dir"] and "prodmatch ingest" in problems(output)["metadata"]


def test_postgresql_not_listening_exits_1_without_leaking_the_password(
    fake_myntra: Settings,
    fake_embedders: FakeEmbedders,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"postgresql://prodmatch:hunter2@127.0.0.1:{free_port()}/catalog"  # nothing listens there
    monkeypatch.setenv("PRODMATCH_DATA_DIR", str(fake_myntra.data_dir))
    code, output = run_doctor(monkeypatch, capsys, fake_embedders, "--metadata-url", url)
    assert code == 1
    assert "start the database" in problems(output)["metadata"] and "hunter2" not in output


def test_a_missing_bundle_exits_1_with_the_export_command(
    fake_myntra: Settings,
    fake_embedders: FakeEmbedders,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    store = open_metadata_store(fake_myntra.location().metadata_url)
    store.set_meta(MODEL_KEY, {**store.get_meta(MODEL_KEY), "bundle": str(tmp_path / "moved-away")})
    store.close()
    monkeypatch.setenv("PRODMATCH_DATA_DIR", str(fake_myntra.data_dir))
    code, output = run_doctor(monkeypatch, capsys, fake_embedders)
    assert code == 1 and set(problems(output)) == {"model"}
    assert "prodmatch model export fake-pixels-words" in problems(output)["model"]


def test_an_index_out_of_step_is_reported_then_repaired_by_opening_the_catalog(
    fake_myntra: Settings, fake_embedders: FakeEmbedders
) -> None:
    location = fake_myntra.location()
    index = open_vector_index(location.vectors_url, "image", 192, fake_myntra.index)
    index.remove(np.sort(index.ids())[:3].tolist())  # as if a crash lost the last save
    index.save()
    index.close()
    checks = {c.name: c for c in diagnose(fake_myntra, embedders=fake_embedders)}
    image, text = checks["vectors (image)"], checks["vectors (text)"]
    assert not image.ok and "3 missing from the index" in image.detail and text.ok
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        catalog.stores.open_indexes()  # opening for use repairs the index from the metadata store
        catalog.save()
    assert all(c.ok for c in diagnose(fake_myntra, embedders=fake_embedders))
