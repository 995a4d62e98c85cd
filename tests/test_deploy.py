"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here): Compose itself
(Debian's docker-compose, which scripts/setup.sh installs) validates and resolves the compose file, dockerfile-parse
reads the Dockerfile, and the tests check what a build or a `docker compose up` would trip over: files copied that
the build context lacks, stages that do not exist, a root runtime, commands or flags prodmatch does not have, pip
extras pyproject.toml does not define, settings prodmatch does not read, and services wired to the wrong places."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from pydantic import BaseModel

from prodmatch import cli as prodmatch_cli
from prodmatch.cli import models as cli_models
from prodmatch.config import Settings
from prodmatch.models.registry import get_spec
from prodmatch.models.triton.client import TritonTarget
from prodmatch.stores.factory import METADATA_SCHEMES, VECTOR_SCHEMES
from prodmatch.stores.urls import scheme_of

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
EXTRAS = set(PYPROJECT["project"]["optional-dependencies"])


@dataclass
class Stage:
    name: str
    base: str  # an image reference, or an earlier stage's name
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, value), in order


def dockerfile_stages() -> dict[str, Stage]:
    """The Dockerfile's stages by name, in order, with ARG defaults substituted in FROM lines."""
    parsed = DockerfileParser(str(REPO / "Dockerfile"))
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    for item in parsed.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "ARG" and not stages:
            name, _, default = value.partition("=")
            args[name] = default
        elif instruction == "FROM":
            image, name = re.split(r"\s+AS\s+", value, flags=re.IGNORECASE)  # every stage is named
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            stages[name] = Stage(name, image)
        elif instruction != "COMMENT":
            list(stages.values())[-1].instructions.append((instruction, value))
    return stages


STAGES = dockerfile_stages()


def lineage(stage: Stage) -> list[Stage]:
    """STAGE and the stages it is built FROM, base first."""
    chain = [stage]
    while chain[0].base in STAGES:
        chain.insert(0, STAGES[chain[0].base])
    return chain


def last(stage: Stage, instruction: str) -> str | None:
    values = [value for stage_ in lineage(stage) for kind, value in stage_.instructions if kind == instruction]
    return values[-1] if values else None


def image_env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for kind, value in (i for s in lineage(stage) for i in s.instructions):
        if kind == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(value))
    return env


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps PATH (relative, POSIX) or a folder above it out of the build context."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in (p for p in patterns if p and not p.startswith("#")):
        keep, pattern = pattern.startswith("!"), pattern.removeprefix("!")
        anywhere = pattern.removeprefix("**/")
        for prefix in prefixes:
            tail = "/".join(prefix.split("/")[-len(PurePosixPath(anywhere).parts) :])
            if fnmatch.fnmatchcase(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(tail, anywhere)
            ):
                ignored = not keep
    return ignored


def setting_of(name: str) -> tuple[str, ...]:
    """The path of the setting an environment variable PRODMATCH_A__B sets, checked against Settings' fields."""
    assert name.startswith("PRODMATCH_"), name
    path = tuple(name.removeprefix("PRODMATCH_").lower().split("__"))
    model: type[BaseModel] = Settings
    for part in path:
        assert part in model.model_fields, f"{name}: prodmatch has no setting {'.'.join(path)}"
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else BaseModel
    return path


def assert_settings_read(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Every PRODMATCH_ variable in ENV is a setting, and Settings read from ENV take its value."""
    for name, value in env.items():
        if name.startswith("PRODMATCH_"):
            monkeypatch.setenv(name, value)
    settings = Settings()
    for name, value in env.items():
        if name.startswith("PRODMATCH_"):
            read: Any = settings
            for part in setting_of(name):
                read = getattr(read, part)
            assert str(read) == value, f"{name}={value} reads as {read!r}"
    return settings


def test_dockerfile_stages_build_from_images_or_earlier_stages() -> None:
    assert list(STAGES) == ["build", "api", "export"]
    names = list(STAGES)
    for index, stage in enumerate(STAGES.values()):
        if stage.base in STAGES:
            assert names.index(stage.base) < index, f"{stage.name} builds FROM a later stage"
        else:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", stage.base) and not stage.base.endswith(":latest"), stage.base
        for kind, value in stage.instructions:
            if kind == "COPY" and (source := re.match(r"--from=(\S+)", value)):
                origin = source.group(1)
                assert origin in names[:index], f"{stage.name} copies from {origin}, not an earlier stage"
                copied = value.split()[1]
                made = " ".join(v for _, v in STAGES[origin].instructions)
                assert copied in made, f"{origin} never makes {copied}"


def test_dockerfile_copies_files_that_are_in_the_build_context() -> None:
    copied = []
    for stage in STAGES.values():
        for kind, value in stage.instructions:
            if kind in ("COPY", "ADD") and not value.startswith("--from"):
                *sources, _destination = shlex.split(value)
                copied += sources
    assert {"pyproject.toml", "README.md", "src"} <= set(copied)
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert not dockerignored(source), f"COPY {source}: .dockerignore leaves it out of the build context"
    # the package's data files (registry, UI, migrations) must reach the wheel build
    tracked = subprocess.run(["git", "ls-files", "src"], cwd=REPO, capture_output=True, text=True, check=True)
    for path in tracked.stdout.split():
        assert not dockerignored(path), f"{path} is left out of the build context by .dockerignore"
    assert dockerignored("src/prodmatch/__pycache__/cli.cpython-311.pyc") and dockerignored(".venv/bin/python")


def test_dockerfile_installs_extras_that_exist_and_the_pinned_torch() -> None:
    installs = [v for s in STAGES.values() for kind, v in s.instructions if kind == "RUN" and "pip " in v]
    named = [
        extra for command in installs for group in re.findall(r"\[([\w,-]+)\]", command) for extra in group.split(",")
    ]
    assert {"serve", "export"} <= set(named)
    assert set(named) <= EXTRAS, set(named) - EXTRAS
    pinned = next(d for d in PYPROJECT["project"]["optional-dependencies"]["export"] if d.startswith("torch"))
    assert any(f'"{pinned}"' in command and "download.pytorch.org/whl/cpu" in command for command in installs)


def test_runtime_images_run_as_a_user_they_create() -> None:
    for name in ("api", "export"):
        stage = STAGES[name]
        user = last(stage, "USER")
        assert user not in (None, "root", "0", "0:0"), f"{name} runs as root"
        made = " ".join(v for s in lineage(stage) for kind, v in s.instructions if kind == "RUN")
        assert re.search(rf"useradd\b[^&]*\b{user}\b", made), f"{name}: user {user} is never created"


def test_api_image_settings_port_and_healthcheck_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from prodmatch.api.app import create_app

    api = STAGES["api"]
    settings = assert_settings_read(image_env(api), monkeypatch)
    assert settings.serve.host == "0.0.0.0"  # reachable from outside the container
    assert last(api, "EXPOSE") == str(settings.serve.port)
    healthcheck = last(api, "HEALTHCHECK") or ""
    assert "CMD" in healthcheck
    url = urlsplit(re.findall(r"https?://[^'\"]+", healthcheck)[0])
    assert url.port == settings.serve.port
    # liveness answers without a catalog (no lifespan here: the container has none yet either)
    assert TestClient(create_app(settings)).get(url.path).status_code == 200


@dataclass
class Run:
    code: int
    stderr: str


def run_prodmatch(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """`prodmatch ARGS` through its entry point in this process (its work replaced by the caller)."""
    monkeypatch.setattr(sys, "argv", ["prodmatch", *args])
    try:
        prodmatch_cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return Run(code, capsys.readouterr().err)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The resolved configuration with every profile enabled, as `docker compose config` prints it."""
    return resolved_compose({})


def resolved_compose(environment: dict[str, str]) -> dict[str, Any]:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is missing: apt-get install docker-compose (scripts/setup.sh does it)")
    result = subprocess.run(
        ["docker-compose", *(f"--profile={p}" for p in ("setup", "mongo", "milvus", "chroma")), "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "POSTGRES_PASSWORD": "s3cret", **environment},
    )
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    return resolved


def test_image_commands_are_prodmatch_commands_with_options_it_has(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api_command = json.loads(last(STAGES["api"], "CMD") or "[]")
    assert api_command[0] == "prodmatch"
    assert run_prodmatch([*api_command[1:], "--help"], monkeypatch, capsys).code == 0
    # The export service runs the export image's ENTRYPOINT with its command: parsed and checked by prodmatch
    # itself, with the export's work replaced by a recorder.
    entrypoint = json.loads(last(STAGES["export"], "ENTRYPOINT") or "[]")
    asked: dict[str, Any] = {}

    def record(name: str, precision: str, out_dir: Path, options: Any, prefix: str | None, photos: list[Path]) -> Any:
        asked.update(name=name, precision=precision, out=out_dir, options=options)
        return None, []

    monkeypatch.setattr(cli_models, "_export_triton", record)
    run = run_prodmatch([*entrypoint[1:], *compose["services"]["export"]["command"]], monkeypatch, capsys)
    assert entrypoint[0] == "prodmatch" and run.code == 0, run.stderr
    assert get_spec(asked["name"]).for_matching and asked["precision"] == "fp16"
    assert asked["options"].device == "gpu" and asked["out"] == Path("/models/triton")
    bad = run_prodmatch(
        [*entrypoint[1:], "clip-vit-b-32", "--out", "/x", "--device", "tpu", "--format", "triton"], monkeypatch, capsys
    )
    assert bad.code == 2 and "--device" in bad.stderr  # the recorder is reached only by valid options


def test_compose_has_the_api_and_the_services_it_needs(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"export", "triton", "postgres", "mongo", "qdrant", "milvus", "chroma", "api"}
    api = services["api"]
    assert (api["build"]["target"], services["export"]["build"]["target"]) == ("api", "export")
    assert {api["build"]["target"], services["export"]["build"]["target"]} <= set(STAGES)
    assert {"published": 8000, "target": 8000} in api["ports"]
    assert {name: dep["condition"] for name, dep in api["depends_on"].items()} == {
        "postgres": "service_healthy",
        "triton": "service_healthy",
        "qdrant": "service_started",
    }


def test_compose_environment_is_settings_prodmatch_reads(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    prodmatch_images = {"api": STAGES["api"], "export": STAGES["export"]}
    for name, stage in prodmatch_images.items():
        environment = {**image_env(stage), **compose["services"][name].get("environment", {})}
        assert_settings_read(environment, monkeypatch)
    for name, service in compose["services"].items():
        if name not in prodmatch_images:
            assert not any(key.startswith("PRODMATCH_") for key in service.get("environment", {})), name


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


def test_volumes_hold_what_the_images_write_and_read(compose: dict[str, Any]) -> None:
    """The export writes bundles where the API reads them, both on the shared `models` volume; the API's data
    dir is on a volume of its own (v1 prints short volume syntax: SOURCE:TARGET[:MODE])."""
    services = compose["services"]
    mounts = {name: {v.split(":")[1]: v.split(":")[0] for v in s.get("volumes", [])} for name, s in services.items()}

    def volume_holding(service: str, path: str) -> str:
        found = [source for target, source in mounts[service].items() if PurePosixPath(path).is_relative_to(target)]
        assert found, f"{service}: {path} is on no volume (lost with the container)"
        return found[0]

    export_env = {**image_env(STAGES["export"]), **services["export"]["environment"]}
    api_env = {**image_env(STAGES["api"]), **services["api"]["environment"]}
    assert export_env["PRODMATCH_MODELS_DIR"] == api_env["PRODMATCH_MODELS_DIR"]
    assert volume_holding("export", export_env["PRODMATCH_MODELS_DIR"]) == "models"
    assert volume_holding("api", api_env["PRODMATCH_MODELS_DIR"]) == "models"
    out = services["export"]["command"][services["export"]["command"].index("--out") + 1]
    assert volume_holding("export", out) == volume_holding("triton", out) == "models"
    assert volume_holding("api", api_env["PRODMATCH_DATA_DIR"]) == "data"
    assert set(compose["volumes"]) >= {"models", "data", "postgres", "qdrant"}


def test_the_milvus_option_is_a_standalone_the_api_can_be_pointed_at() -> None:
    """`--profile milvus` with VECTORS_URL=milvus://milvus:19530: a scheme prodmatch accepts, naming the service;
    the standalone's embedded etcd reads a config file that exists in the repository."""
    services = resolved_compose({"VECTORS_URL": "milvus://milvus:19530"})["services"]
    vectors = services["api"]["environment"]["PRODMATCH_VECTORS_URL"]
    assert scheme_of(vectors) in VECTOR_SCHEMES and (urlsplit(vectors).hostname, urlsplit(vectors).port) == (
        "milvus",
        19530,
    )
    milvus = services["milvus"]
    assert milvus["command"] == ["milvus", "run", "standalone"] and milvus["environment"]["ETCD_USE_EMBED"] == "true"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in milvus["volumes"]}
    config = Path(mounts[milvus["environment"]["ETCD_CONFIG_PATH"]])
    assert config.is_file() and "listen-client-urls" in config.read_text()
    assert mounts["/var/lib/milvus"] == "milvus"  # its data outlives the container


def test_the_chroma_option_is_a_server_the_api_can_be_pointed_at() -> None:
    services = resolved_compose({"VECTORS_URL": "chroma://chroma:8000"})["services"]
    vectors = services["api"]["environment"]["PRODMATCH_VECTORS_URL"]
    assert scheme_of(vectors) in VECTOR_SCHEMES and urlsplit(vectors).hostname == "chroma"
    chroma = services["chroma"]
    assert chroma["image"].startswith("chromadb/chroma:") and chroma["environment"]["ANONYMIZED_TELEMETRY"] == "false"
    assert {v.split(":")[1]: v.split(":")[0] for v in chroma["volumes"]}["/data"] == "chroma"  # the image's --path
