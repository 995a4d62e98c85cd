"""Which model bundle built a catalog: a query model must have the same fingerprint, or vectors would mix."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from prodmatch.errors import ModelMismatchError
from prodmatch.models.bundle import Bundle, is_bundle

MODEL_KEY = "model"  # where a catalog's metadata store keeps its ModelRecord


class ModelRecord(BaseModel):
    """The bundle that built a catalog's vectors."""

    name: str
    precision: str
    fingerprint: str
    bundle: str
    shared_space: bool
    spaces: dict[str, int]

    @classmethod
    def of(cls, bundle: Bundle) -> ModelRecord:
        manifest = bundle.manifest
        return cls(
            name=manifest.name,
            precision=manifest.precision,
            fingerprint=manifest.fingerprint,
            bundle=str(bundle.folder.resolve()),
            shared_space=manifest.shared_space,
            spaces=manifest.spaces,
        )

    def check_bundle(self, bundle: Bundle, catalog: str) -> None:
        """Refuse BUNDLE when it is not the one that built CATALOG (its fingerprint changed)."""
        if bundle.manifest.fingerprint != self.fingerprint:
            raise ModelMismatchError(
                f"bundle {bundle.folder} (fingerprint {bundle.manifest.fingerprint}) is not the one that built "
                f"{catalog} ({self.fingerprint}); re-ingest into a new data dir"
            )

    def refuse_other_model(self, model: str, catalog: str) -> None:
        """Refuse MODEL (a registry name or bundle folder) when it is not this record's model."""
        if is_bundle(Path(model)):
            fingerprint = Bundle(Path(model)).manifest.fingerprint
            if fingerprint == self.fingerprint:
                return
            detail = f"bundle {model} has fingerprint {fingerprint}"
        elif model == self.name:
            return
        else:
            detail = f"model {model!r} was asked for"
        raise ModelMismatchError(
            f"{catalog} was built with {self.name} ({self.precision}, fingerprint {self.fingerprint}) but {detail}; "
            f"vectors from different models cannot be mixed. Use another --data-dir, or omit --model."
        )
