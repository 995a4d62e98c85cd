"""Model bundles: a folder with manifest.json, one ONNX graph per tower and the tokenizer file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel

from prodmatch.errors import ModelUnavailableError
from prodmatch.models.registry import ImageTowerSpec, ModelSpec, Precision, TextTowerSpec

MANIFEST_NAME = "manifest.json"
IMAGE_GRAPH = "image.onnx"
TEXT_GRAPH = "text.onnx"
TOKENIZER_FILE = "tokenizer.json"


class Manifest(BaseModel):
    """Everything needed to run a bundle without the registry or PyTorch."""

    format_version: int = 1
    name: str
    family: str
    source: str
    description: str
    for_matching: bool
    shared_space: bool
    precision: Precision
    image: ImageTowerSpec
    text: TextTowerSpec
    image_graph: str = IMAGE_GRAPH
    text_graph: str = TEXT_GRAPH
    tokenizer_file: str = TOKENIZER_FILE
    fingerprint: str = ""

    @classmethod
    def from_spec(cls, spec: ModelSpec, precision: Precision) -> Manifest:
        return cls(**spec.model_dump(exclude={"default_precision"}), precision=precision)

    @property
    def spaces(self) -> dict[str, int]:
        """The vector spaces this model writes, with their dimensions."""
        return {"image": self.image.dims, "text": self.text.dims}


class Bundle:
    """A bundle folder on disk, validated on open."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        manifest_path = self.folder / MANIFEST_NAME
        if not manifest_path.is_file():
            raise ModelUnavailableError(f"{self.folder} is not a model bundle (no {MANIFEST_NAME})")
        self.manifest = Manifest.model_validate_json(manifest_path.read_text())
        for name in (self.manifest.image_graph, self.manifest.text_graph, self.manifest.tokenizer_file):
            if not (self.folder / name).is_file():
                raise ModelUnavailableError(f"bundle {self.folder} is incomplete: {name} is missing")

    @property
    def image_graph(self) -> Path:
        return self.folder / self.manifest.image_graph

    @property
    def text_graph(self) -> Path:
        return self.folder / self.manifest.text_graph

    @property
    def tokenizer_file(self) -> Path:
        return self.folder / self.manifest.tokenizer_file


def is_bundle(path: Path) -> bool:
    return (Path(path) / MANIFEST_NAME).is_file()


def fingerprint(folder: Path, manifest: Manifest) -> str:
    """A short hash of the graphs, tokenizer and preprocessing: equal fingerprints give equal vectors."""
    digest = hashlib.sha256()
    for name in (manifest.image_graph, manifest.text_graph, manifest.tokenizer_file):
        with open(folder / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    # Only what changes the vectors: files above, preprocessing, tokenisation settings, dims.
    inputs = {"image": manifest.image.model_dump(exclude={"int8"}), "text": manifest.text.model_dump(exclude={"int8"})}
    digest.update(json.dumps(inputs, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def write_manifest(folder: Path, manifest: Manifest) -> Manifest:
    """Fingerprint the folder's files and write manifest.json last, so a half-written bundle never opens."""
    manifest = manifest.model_copy(update={"fingerprint": fingerprint(folder, manifest)})
    (folder / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2))
    return manifest
