"""An Embedder whose towers run on an NVIDIA Triton Inference Server.

    PRODMATCH_MODEL_URL=triton://HOST:8001/NAME        gRPC (the default; faster for large image batches)
    PRODMATCH_MODEL_URL=triton+http://HOST:8000/NAME   HTTP
    query options: timeout_s (per call, default 30), retries (transient failures, default 3), version

NAME is the name given at `prodmatch model export --format triton` (the bundle's name by default); the server
must serve NAME_image and NAME_text from the same bundle as the catalog (checked by fingerprint). Preprocessing
and tokenisation run here, from the local bundle, as they do for the local backend.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

from prodmatch.errors import ModelMismatchError, ModelServerUnavailableError, ModelUnavailableError
from prodmatch.models.bundle import Bundle
from prodmatch.models.embedder import ManifestProperties, l2_normalise
from prodmatch.models.tokenize import TextTokenizer
from prodmatch.models.triton.repository import FINGERPRINT_KEY, require_tritonclient, tower_model_name

T = TypeVar("T")
DEFAULT_PORTS = {"grpc": 8001, "http": 8000}
_NUMPY_TYPES = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_INT64": np.int64, "TYPE_INT32": np.int32}
# gRPC status codes worth another try: the server restarting, overloaded or slow; anything else is final.
_TRANSIENT_GRPC = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.RESOURCE_EXHAUSTED"}
_TRANSIENT_HTTP = {"502", "503", "504"}
TEXT_LENGTH_BUCKET = 16


@dataclass(frozen=True)
class TritonTarget:
    """Where the towers are served, parsed from the model URL."""

    protocol: str  # "grpc" | "http"
    address: str  # host:port
    name: str
    version: str = ""
    timeout_s: float = 30.0
    retries: int = 3

    @classmethod
    def parse(cls, url: str) -> TritonTarget:
        parts = urlsplit(url)
        protocols = {"triton": "grpc", "triton+grpc": "grpc", "triton+http": "http"}
        if parts.scheme not in protocols:
            raise ModelUnavailableError(f"model URL {url!r}: scheme must be one of {', '.join(protocols)}")
        name = parts.path.strip("/")
        if not parts.hostname or not name:
            raise ModelUnavailableError(f"model URL {url!r} must look like triton://HOST:PORT/MODEL_NAME")
        protocol = protocols[parts.scheme]
        options = {key: values[0] for key, values in parse_qs(parts.query).items()}
        try:
            return cls(
                protocol,
                f"{parts.hostname}:{parts.port or DEFAULT_PORTS[protocol]}",
                name,
                options.get("version", ""),
                float(options.get("timeout_s", 30.0)),
                int(options.get("retries", 3)),
            )
        except ValueError as exc:
            raise ModelUnavailableError(f"model URL {url!r}: {exc}") from exc

    def __str__(self) -> str:
        return f"Triton {self.protocol} at {self.address}"


def is_transient(exc: BaseException) -> bool:
    """True for failures another try may fix: connection refused or reset, timeouts, 5xx/UNAVAILABLE."""
    from tritonclient.utils import InferenceServerException

    if isinstance(exc, InferenceServerException):
        return str(exc.status()) in _TRANSIENT_GRPC | _TRANSIENT_HTTP
    return isinstance(exc, OSError | TimeoutError)


class TritonTransport:
    """The few calls prodmatch makes, over gRPC or HTTP (their clients differ in small ways)."""

    def __init__(self, target: TritonTarget) -> None:
        self.target = target
        if target.protocol == "grpc":
            import tritonclient.grpc as module

            self.module: Any = module
            self.client: Any = module.InferenceServerClient(target.address)
            self._timeout: dict[str, float] = {"client_timeout": target.timeout_s}
        else:
            import tritonclient.http as module

            self.module = module
            self.client = module.InferenceServerClient(
                target.address, connection_timeout=target.timeout_s, network_timeout=target.timeout_s
            )
            self._timeout = {}

    def server_ready(self) -> bool:
        return bool(self.client.is_server_ready(**self._timeout))

    def model_ready(self, name: str) -> bool:
        return bool(self.client.is_model_ready(name, self.target.version, **self._timeout))

    def model_config(self, name: str) -> dict[str, Any]:
        if self.target.protocol == "grpc":
            config: dict[str, Any] = self.client.get_model_config(
                name, self.target.version, as_json=True, **self._timeout
            )["config"]
            return config
        return dict(self.client.get_model_config(name, self.target.version))

    def model_names(self) -> list[str]:
        if self.target.protocol == "grpc":
            index = self.client.get_model_repository_index(as_json=True, **self._timeout).get("models", [])
        else:
            index = self.client.get_model_repository_index()
        return sorted({entry["name"] for entry in index})

    def infer(self, name: str, feeds: dict[str, np.ndarray], output: str) -> np.ndarray:
        inputs = []
        for input_name, array in feeds.items():
            tensor = self.module.InferInput(input_name, list(array.shape), _triton_datatype(array))
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        outputs = [self.module.InferRequestedOutput(output)]
        result = self.client.infer(name, inputs, model_version=self.target.version, outputs=outputs, **self._timeout)
        vectors: np.ndarray = result.as_numpy(output)
        return vectors

    def close(self) -> None:
        self.client.close()


def _triton_datatype(array: np.ndarray) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return str(np_to_triton_dtype(array.dtype))


@dataclass(frozen=True)
class ServedTower:
    """What the server's config says about one tower."""

    model: str
    inputs: dict[str, Any]  # input name -> numpy dtype
    output: str
    max_batch: int


class TritonEmbedder(ManifestProperties):
    """Embedder whose model runs on Triton; BUNDLE supplies the manifest, preprocessing and tokenizer."""

    def __init__(self, bundle: Bundle, url: str) -> None:
        require_tritonclient()
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.target = TritonTarget.parse(url)
        self.tokenizer = TextTokenizer(bundle.tokenizer_file, self.manifest.text)
        self._local = threading.local()  # one client per thread: the HTTP client is not thread-safe
        self._transports: list[TritonTransport] = []
        self._lock = threading.Lock()
        self.image_tower = self._served("image")
        self.text_tower = self._served("text")

    def _transport(self) -> TritonTransport:
        transport: TritonTransport | None = getattr(self._local, "transport", None)
        if transport is None:
            transport = self._local.transport = TritonTransport(self.target)
            with self._lock:
                self._transports.append(transport)
        return transport

    def _call(self, what: str, call: Callable[[TritonTransport], T]) -> T:
        """CALL with retries and exponential backoff on transient failures; clear errors otherwise."""
        import tenacity
        from tritonclient.utils import InferenceServerException

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.target.retries + 1),
            wait=tenacity.wait_random_exponential(multiplier=0.1, max=2.0),
            retry=tenacity.retry_if_exception(is_transient),
            reraise=True,
        )
        try:
            return retrying(lambda: call(self._transport()))
        except InferenceServerException as exc:
            if is_transient(exc):
                raise ModelServerUnavailableError(f"{self.target} is unavailable ({what}): {exc.message()}") from exc
            raise ModelUnavailableError(f"{self.target} refused {what}: {exc.message()}") from exc
        except (OSError, TimeoutError) as exc:
            raise ModelServerUnavailableError(f"{self.target} is unreachable ({what}): {exc}") from exc

    def _served(self, tower: str) -> ServedTower:
        """The tower's model on the server, checked: ready, from this bundle, with the inputs we send."""
        model = tower_model_name(self.target.name, tower)
        if not self._call("model ready", lambda t: t.model_ready(model)):
            names = self._call("model list", lambda t: t.model_names())
            raise ModelUnavailableError(
                f"{self.target} has no ready model {model!r} (export it with `prodmatch model export "
                f"{self.manifest.name} --format triton`); it serves: {', '.join(names) or 'nothing'}"
            )
        config = self._call("model config", lambda t: t.model_config(model))
        served = config.get("parameters", {}).get(FINGERPRINT_KEY, {}).get("string_value")
        if served != self.manifest.fingerprint:
            raise ModelMismatchError(
                f"{self.target} model {model!r} was exported from bundle fingerprint {served or '(none)'}, "
                f"but the catalog uses {self.manifest.fingerprint}: export the catalog's bundle to Triton"
            )
        inputs = {entry["name"]: _NUMPY_TYPES[entry["data_type"]] for entry in config["input"]}
        return ServedTower(model, inputs, config["output"][0]["name"], int(config.get("max_batch_size", 0)) or 1)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.embed_pixels(self.pixels(images))

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        (name, dtype), *_ = self.image_tower.inputs.items()
        rows = [
            self._infer(self.image_tower, {name: np.ascontiguousarray(chunk, dtype=dtype)})
            for chunk in _chunks(pixels, self.image_tower.max_batch)
        ]
        return l2_normalise(np.concatenate(rows)) if rows else np.zeros((0, self.manifest.image.dims), "f4")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for chunk in _chunks(list(texts), self.text_tower.max_batch):
            # Lengths rounded up to a bucket, so that most concurrent requests share a shape and Triton can batch
            # them together; padding to the model's full length instead cost 10-20x in compute (MiniLM, 256).
            encoded = self.tokenizer.encode(chunk, pad_to_multiple_of=TEXT_LENGTH_BUCKET)
            feeds: dict[str, np.ndarray] = {
                name: encoded[name].astype(dtype) for name, dtype in self.text_tower.inputs.items()
            }
            rows.append(self._infer(self.text_tower, feeds))
        return l2_normalise(np.concatenate(rows)) if rows else np.zeros((0, self.manifest.text.dims), "f4")

    def _infer(self, tower: ServedTower, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._call(f"inference on {tower.model}", lambda t: t.infer(tower.model, feeds, tower.output))

    def health(self) -> str | None:
        try:
            ready = self._call(
                "health",
                lambda t: (
                    t.server_ready()
                    and all(t.model_ready(tower.model) for tower in (self.image_tower, self.text_tower))
                ),
            )
        except ModelUnavailableError as exc:
            return str(exc)
        return None if ready else f"{self.target}: server or models not ready"

    def close(self) -> None:
        with self._lock:
            for transport in self._transports:
                transport.close()
            self._transports.clear()


def _chunks(items: Any, size: int) -> list[Any]:
    return [items[start : start + size] for start in range(0, len(items), size)]
