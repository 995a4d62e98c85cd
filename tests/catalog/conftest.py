"""Fixtures of the catalog tests: electronics-small as a JSONL feed, and one local Ray for every Ray test of the
session (the Ray engine, the sharded downloader): starting Ray costs tens of seconds. On 127.0.0.1 only, no
dashboard; its workers import prodmatch and the tests from this checkout."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def electronics(shared_data: Path, tmp_path: Path) -> Path:
    """electronics-small as JSONL: 10 products, one photo each (the file's image paths are absolute paths from
    another machine; the photos are copied beside the feed)."""
    items = json.loads((shared_data / "electronics-small" / "metadata.json").read_text())
    catalog = tmp_path / "catalog" / "products.jsonl"
    catalog.parent.mkdir()
    shutil.copytree(shared_data / "electronics-small" / "images", catalog.parent / "images")
    catalog.write_text("".join(json.dumps(item) + "\n" for item in items))
    return catalog


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    from prodmatch.catalog.ray_engine import GCS_WAIT_S, GCS_WAIT_VARIABLE

    path = os.pathsep.join(entry for entry in sys.path if entry)
    os.environ.setdefault(GCS_WAIT_VARIABLE, GCS_WAIT_S)  # as start_ray does: a loaded CI machine starts Ray slowly
    ray.init(
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=2,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield
    ray.shutdown()
