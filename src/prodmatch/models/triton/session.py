"""ModelSessions whose towers run on an NVIDIA Triton Inference Server (URL syntax in triton.client).

The server must serve NAME_image and NAME_text exported from the same bundle as the catalog (checked by
fingerprint); preprocessing and tokenisation stay here, from the local bundle, as for the in-process backends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from prodmatch.errors import ModelMismatchError, ModelUnavailableError
from prodmatch.models.bundle import Manifest
from prodmatch.models.triton.client import TritonConnection, TritonTarget
from prodmatch.models.triton.repository import FINGERPRINT_KEY, require_tritonclient, tower_model_name

_NUMPY_TYPES = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_INT64": np.int64, "TYPE_INT32": np.int32}
# Texts are padded to a multiple of this many tokens, so that most concurrent requests share a shape and Triton
# can batch them together; padding to the model's full length instead cost 10-20x in compute (MiniLM, 256).
TEXT_LENGTH_BUCKET = 16


class TritonTowerSession:
    """One tower's model on the server; max_batch and the inputs' types are the server's config."""

    pad_to_multiple_of = TEXT_LENGTH_BUCKET

    def __init__(
        self, connection: TritonConnection, model: str, inputs: Mapping[str, np.dtype[Any]], output: str, max_batch: int
    ) -> None:
        self.connection = connection
        self.model = model
        self.inputs = inputs
        self.output = output
        self.max_batch = max_batch

    @classmethod
    def open(cls, connection: TritonConnection, manifest: Manifest, tower: str) -> TritonTowerSession:
        """The TOWER's model on the server, checked: ready, exported from MANIFEST's bundle."""
        target = connection.target
        model = tower_model_name(target.name, tower)
        if not connection.call("model ready", lambda t: t.model_ready(model)):
            names = connection.call("model list", lambda t: t.model_names())
            raise ModelUnavailableError(
                f"{target} has no ready model {model!r} (export it with `prodmatch model export "
                f"{manifest.name} --format triton`); it serves: {', '.join(names) or 'nothing'}"
            )
        config = connection.call("model config", lambda t: t.model_config(model))
        served = config.get("parameters", {}).get(FINGERPRINT_KEY, {}).get("string_value")
        if served != manifest.fingerprint:
            raise ModelMismatchError(
                f"{target} model {model!r} was exported from bundle fingerprint {served or '(none)'}, "
                f"but the catalog uses {manifest.fingerprint}: export the catalog's bundle to Triton"
            )
        inputs = {entry["name"]: np.dtype(_NUMPY_TYPES[entry["data_type"]]) for entry in config["input"]}
        # max_batch_size 0 means the model does not batch: one row per request.
        return cls(connection, model, inputs, config["output"][0]["name"], int(config.get("max_batch_size", 0)) or 1)

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        feeds = dict(inputs)
        return self.connection.call(f"inference on {self.model}", lambda t: t.infer(self.model, feeds, self.output))

    def health(self) -> str | None:
        try:
            ready = self.connection.call("health", lambda t: t.server_ready() and t.model_ready(self.model))
        except ModelUnavailableError as exc:
            return str(exc)
        return None if ready else f"{self.connection.target}: server or model {self.model} not ready"

    def close(self) -> None:
        self.connection.close()  # shared with the other tower; closing twice is harmless


def open_triton_sessions(manifest: Manifest, url: str) -> tuple[TritonTowerSession, TritonTowerSession]:
    """The image and text towers of MANIFEST's bundle at URL, sharing one connection."""
    require_tritonclient()
    connection = TritonConnection(TritonTarget.parse(url))
    try:
        image = TritonTowerSession.open(connection, manifest, "image")
        text = TritonTowerSession.open(connection, manifest, "text")
    except BaseException:
        connection.close()  # a refused or missing tower must not leave the other's clients open
        raise
    return image, text
