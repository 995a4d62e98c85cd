"""Talking to an NVIDIA Triton Inference Server: the model URL, the few calls prodmatch makes over gRPC or HTTP,
and a connection that retries transient failures and keeps one client per thread.

    PRODMATCH_MODEL_URL=triton://HOST:8001/NAME        gRPC (the default; faster for large image batches)
    PRODMATCH_MODEL_URL=triton+http://HOST:8000/NAME   HTTP
    query options: timeout_s (per call, default 30), retries (transient failures, default 3), version
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import numpy as np

from prodmatch.errors import ModelServerUnavailableError, ModelUnavailableError

T = TypeVar("T")
DEFAULT_PORTS = {"grpc": 8001, "http": 8000}
# gRPC status codes worth another try: the server restarting, overloaded or slow; anything else is final.
_TRANSIENT_GRPC = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.RESOURCE_EXHAUSTED"}
_TRANSIENT_HTTP = {"502", "503", "504"}


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


class TritonConnection:
    """A server's clients, one per calling thread (the HTTP client is not thread-safe), shared by the towers."""

    def __init__(self, target: TritonTarget) -> None:
        self.target = target
        self._local = threading.local()
        self._transports: list[TritonTransport] = []
        self._lock = threading.Lock()

    def _transport(self) -> TritonTransport:
        transport: TritonTransport | None = getattr(self._local, "transport", None)
        if transport is None:
            transport = self._local.transport = TritonTransport(self.target)
            with self._lock:
                self._transports.append(transport)
        return transport

    def call(self, what: str, call: Callable[[TritonTransport], T]) -> T:
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

    def close(self) -> None:
        """Close every thread's client; safe to call again (each tower's session closes the connection)."""
        with self._lock:
            for transport in self._transports:
                transport.close()
            self._transports.clear()
