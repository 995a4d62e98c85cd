"""One local Ray for every Ray test of the session (the Ray engine, the sharded downloader): starting Ray costs
tens of seconds. On 127.0.0.1 only, no dashboard; its workers import prodmatch and the tests from this checkout."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest


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
