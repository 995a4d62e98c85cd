"""The Ray engine: the model runs in Ray actors (one model per actor, on any machine of a Ray cluster) while the
ingest pipeline itself (reading, decoding, store writes) stays in the driver, so both engines write the same stores
the same way. Imported only when `--engine ray` is chosen (optional extra `ray`).

The bundle is shipped to the workers through Ray's object store (its files, put once), so a worker needs no shared
file system and no export of its own. Actors are restarted when their process dies (max_restarts) and their calls
retried (max_task_retries); a retried call recomputes the same vectors, and the driver writes each product once.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray

from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle, Manifest
from prodmatch.models.embedder import Embedder, ManifestEmbedder
from prodmatch.models.factory import create_embedder

Factory = Callable[[Bundle, Settings], Embedder]
MAX_RESTARTS = 4
MAX_TASK_RETRIES = 4
GCS_WAIT_VARIABLE, GCS_WAIT_S = "RAY_gcs_server_port_wait_time_s", "120"


def start_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join the cluster at ADDRESS ("auto" or HOST:PORT), or start a local Ray whose traffic stays on loopback."""
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, include_dashboard=False)
    else:
        # Ray waits 30 s for its GCS server to start; on a busy machine that start alone has taken longer. Ray reads
        # this override from the driver's environment only, so it is set here, once, and a user's value wins.
        os.environ.setdefault(GCS_WAIT_VARIABLE, GCS_WAIT_S)
        # address="local": a Ray of this command's own, never a `ray start` cluster that happens to run here
        ray.init(
            address="local", _node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=num_cpus or os.cpu_count()
        )


class ModelActor:
    """One model in one worker process: the bundle written to a local folder from the shipped files, then loaded."""

    def __init__(self, files: dict[str, bytes], settings: Settings, factory: Factory) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="prodmatch-bundle-"))
        for name, data in files.items():
            (self.folder / name).write_bytes(data)
        self.embedder = factory(Bundle(self.folder), settings)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return self.embedder.embed_pixels(pixels)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return self.embedder.embed_texts(texts)

    def fingerprint(self) -> str:
        return self.embedder.fingerprint

    def pid(self) -> int:
        return os.getpid()


class RayEmbedder(ManifestEmbedder):
    """An Embedder whose towers run on ACTORS Ray actors; each batch is split evenly across them."""

    def __init__(
        self, bundle: Bundle, settings: Settings, factory: Factory, actors: int, cpus_per_actor: float
    ) -> None:
        self.manifest: Manifest = bundle.manifest
        files = {path.name: path.read_bytes() for path in bundle.folder.iterdir() if path.is_file()}
        threads = max(1, int(cpus_per_actor))  # each model uses the cores Ray gave its actor, not the machine's
        runtime = settings.runtime.model_copy(update={"intra_op_threads": threads})
        actor_settings = settings.model_copy(update={"runtime": runtime})
        remote = ray.remote(ModelActor).options(
            num_cpus=cpus_per_actor, max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES
        )
        # Held for the embedder's life: a restarted actor is created again from these arguments, and Ray frees an
        # object once its owner drops the last reference to it.
        self._shipped = ray.put(files)
        self.actors: list[Any] = [remote.remote(self._shipped, actor_settings, factory) for _ in range(actors)]
        self._fingerprint: str = ray.get(self.actors[0].fingerprint.remote())

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return self._spread("embed_pixels", pixels, self.manifest.image.dims)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._spread("embed_texts", list(texts), self.manifest.text.dims)

    def _spread(self, method: str, items: Any, dims: int) -> np.ndarray:
        """ITEMS in contiguous chunks, one per actor, answered in order."""
        count = len(items)
        if count == 0:
            return np.zeros((0, dims), np.float32)
        bounds = np.linspace(0, count, min(count, len(self.actors)) + 1).astype(int)
        calls = [
            getattr(actor, method).remote(items[start:end])
            for actor, start, end in zip(self.actors, bounds[:-1], bounds[1:], strict=False)
        ]
        return np.concatenate(ray.get(calls))

    def health(self) -> str | None:
        return None

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)


class RayEmbedders:
    """An EmbedderFactory for Catalog.open: the catalog's model, on Ray actors (FACTORY makes each actor's model)."""

    def __init__(self, actors: int = 2, cpus_per_actor: float = 1.0, factory: Factory = create_embedder) -> None:
        self.actors = actors
        self.cpus_per_actor = cpus_per_actor
        self.factory = factory
        self.made: list[RayEmbedder] = []

    def __call__(self, bundle: Bundle, settings: Settings) -> RayEmbedder:
        embedder = RayEmbedder(bundle, settings, self.factory, self.actors, self.cpus_per_actor)
        self.made.append(embedder)
        return embedder
