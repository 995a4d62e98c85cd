"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here): Compose itself
(Debian's docker-compose, which scripts/setup.sh installs) validates and resolves the file, and the tests check
that the services are wired by URLs prodmatch accepts and that the Dockerfile builds from files that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from prodmatch.models.triton.embedder import TritonTarget
from prodmatch.stores.factory import METADATA_SCHEMES, VECTOR_SCHEMES, scheme_of

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The resolved configuration with every profile enabled, as `docker compose config` prints it."""
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is missing: apt-get install docker-compose (scripts/setup.sh does it)")
    result = subprocess.run(
        ["docker-compose", "--profile", "setup", "--profile", "mongo", "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "POSTGRES_PASSWORD": "s3cret"},
    )
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    return resolved


def test_compose_has_the_api_and_the_services_it_needs(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"export", "triton", "postgres", "mongo", "qdrant", "api"}
    api = compose["services"]["api"]
    assert api["build"]["target"] == "api" and {"published": 8000, "target": 8000} in api["ports"]
    assert {name: dep["condition"] for name, dep in api["depends_on"].items()} == {
        "postgres": "service_healthy",
        "triton": "service_healthy",
        "qdrant": "service_started",
    }


def test_api_urls_name_compose_services_in_schemes_prodmatch_accepts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["api"]["environment"]
    metadata, vectors = env["PRODMATCH_METADATA_URL"], env["PRODMATCH_VECTORS_URL"]
    assert scheme_of(metadata) in METADATA_SCHEMES and scheme_of(vectors) in VECTOR_SCHEMES
    assert urlsplit(metadata).hostname == "postgres" and urlsplit(metadata).password == "s3cret"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "s3cret"
    assert urlsplit(vectors).hostname == "qdrant" and urlsplit(vectors).port == 6333
    model = TritonTarget.parse(env["PRODMATCH_MODEL_URL"])
    assert (model.protocol, model.address) == ("grpc", "triton:8001")
    export_command = services["export"]["command"]
    assert export_command[0] == model.name  # the API asks Triton for the models the export wrote
    out = export_command[export_command.index("--out") + 1]
    triton = services["triton"]
    assert f"--model-repository={out}" in triton["command"]
    assert triton["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    # v1 prints short volume syntax (SOURCE:TARGET[:MODE]): the export writes where Triton and the API read
    assert [v.split(":")[:2] for v in services["export"]["volumes"]] == [["models", "/models"]]
    assert [v.split(":")[:2] for v in triton["volumes"]] == [["models", "/models"]]
    assert ["models", "/models"] in [v.split(":")[:2] for v in services["api"]["volumes"]]


def test_dockerfile_targets_copy_existing_files_and_install_known_extras() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)$", dockerfile, re.MULTILINE)
    assert stages == ["build", "api", "export"]
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE):
        for source in sources.split():
            assert (REPO / source).exists(), source
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for group in re.findall(r"\[([a-z,]+)\]", dockerfile):
        assert set(group.split(",")) <= extras, group
    assert '"torch==2.13.0"' in dockerfile and "whl/cpu" in dockerfile
