"""A seed-000-style MVP product matcher: the baseline that prodmatch's serving speed is compared with.

Written the way a typical take-home writes it, but correct: FastAPI + uvicorn with one worker, a
`transformers` CLIPModel (ViT-B/32, the `CLIPConfig()` defaults) in fp32 PyTorch on the CPU with torch's default
thread count, PIL preprocessing by `CLIPImageProcessor` defaults (resize the short side to 224 bicubic, centre crop
224, CLIP mean/std), a catalog matrix of L2-normalised image embeddings held in memory, a NumPy cosine over the
whole matrix with a full argsort for the top 5, metadata from a JSON-lines file, and one JSON line appended to a
query log per request (the seed's `logs.jsonl`). No batching, no caching, no ONNX, no quantisation, no ANN index.

No model hub is reachable here, so the weights are random (seeded, so every start builds the same model and a
cached catalog matrix stays valid): the cost of a forward pass is exactly that of the real ViT-B/32; the rankings
are meaningless. For the same reason `--random-catalog-vectors` may fill the 10,000 x 512 catalog matrix with
random unit vectors instead of embedding every catalog photo (minutes of fp32 ViT-B/32 on 2 cores): the per-query
search cost depends only on the matrix's shape.

    python -m prodmatch.bench.mvp.service --catalog CATALOG.jsonl --port 8001 --embeddings-cache mvp-embeddings.npy
    curl -F file=@photo.jpg http://127.0.0.1:8001/match-image

Catalog lines are JSON objects with `product_id` and `image` (a path, relative to the catalog's folder or absolute);
every other field is returned with the match. `--handler async` (the default, the usual take-home shape) runs the
model inside an `async def` route, so requests are served one at a time and each forward pass gets every core;
`--handler sync` uses a plain `def` route, which FastAPI runs in its thread pool (concurrent forward passes).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
import uvicorn
from fastapi import FastAPI, File, HTTPException, UploadFile
from PIL import Image, UnidentifiedImageError
from transformers import CLIPConfig, CLIPModel

# transformers >= 5 names the PIL preprocessing backend explicitly (its default one needs torchvision, not here)
ImageProcessor: Any = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor

log = logging.getLogger("mvp")

EMBED_DIM = 512  # CLIPConfig().projection_dim
MODEL_SEED = 0


def load_catalog(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines catalog; every line needs `product_id` and `image`. Image paths become absolute."""
    products = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            product = json.loads(line)
            if "product_id" not in product or "image" not in product:
                raise ValueError(f"{path}:{number}: a product needs 'product_id' and 'image'")
            image = Path(product["image"])
            product["image"] = str(image if image.is_absolute() else path.parent / image)
            products.append(product)
    if not products:
        raise ValueError(f"{path}: no products")
    return products


def build_model(seed: int = MODEL_SEED) -> CLIPModel:
    """CLIP ViT-B/32 (`CLIPConfig()` defaults) with random weights drawn from SEED, in eval mode, fp32 on the CPU."""
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig())
    model.eval()
    return model


def image_features(model: CLIPModel, processor: Any, images: list[Image.Image]) -> np.ndarray:
    """L2-normalised CLIP image embeddings, (len(images), 512) float32."""
    inputs = processor(images=images, return_tensors="pt")
    with torch.inference_mode():
        output = model.get_image_features(pixel_values=inputs["pixel_values"])
    features = output if isinstance(output, torch.Tensor) else output.pooler_output  # transformers 5: a ModelOutput
    vectors: np.ndarray = features.float().numpy()
    normalised: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


def embed_catalog(model: CLIPModel, processor: Any, products: list[dict[str, Any]], batch_size: int = 32) -> np.ndarray:
    """Embed every product's photo, in batches; (len(products), 512) float32."""
    chunks = []
    started = time.perf_counter()
    for start in range(0, len(products), batch_size):
        batch = products[start : start + batch_size]
        images = [Image.open(product["image"]).convert("RGB") for product in batch]
        chunks.append(image_features(model, processor, images))
        done = start + len(batch)
        if done % (batch_size * 20) == 0 or done == len(products):
            log.info("embedded %d/%d catalog photos (%.0f s)", done, len(products), time.perf_counter() - started)
    return np.concatenate(chunks)


def random_unit_vectors(count: int, dim: int = EMBED_DIM, seed: int = 0) -> np.ndarray:
    """COUNT random L2-normalised float32 vectors (a stand-in catalog matrix: same shape, same search cost)."""
    vectors: np.ndarray = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    normalised: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


def catalog_fingerprint(products: list[dict[str, Any]]) -> str:
    """A hash of the product ids, image paths and the model seed: a cached matrix is valid only for the same one."""
    digest = hashlib.sha256(f"seed={MODEL_SEED}".encode())
    for product in products:
        digest.update(f"\n{product['product_id']}\t{product['image']}".encode())
    return digest.hexdigest()


def catalog_matrix(
    model: CLIPModel, processor: Any, products: list[dict[str, Any]], cache: Path | None, random_vectors: bool
) -> np.ndarray:
    """The catalog's embedding matrix: random unit vectors, a valid cache (.npy plus a .json fingerprint), or
    freshly embedded photos (then written to the cache)."""
    if random_vectors:
        return random_unit_vectors(len(products))
    fingerprint = catalog_fingerprint(products)
    meta = cache.with_suffix(".json") if cache else None
    if cache and meta and cache.exists() and meta.exists():
        if json.loads(meta.read_text()).get("fingerprint") == fingerprint:
            matrix: np.ndarray = np.load(cache)
            if matrix.shape == (len(products), EMBED_DIM):
                log.info("catalog embeddings from %s", cache)
                return matrix.astype(np.float32)
        log.info("%s is for another catalog: re-embedding", cache)
    matrix = embed_catalog(model, processor, products)
    if cache and meta:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, matrix)
        meta.write_text(json.dumps({"fingerprint": fingerprint, "shape": list(matrix.shape)}))
    return matrix


class Matcher:
    """The model, the catalog metadata and its embedding matrix; answers one photo at a time."""

    def __init__(self, model: CLIPModel, processor: Any, products: list[dict[str, Any]], matrix: np.ndarray) -> None:
        self.model = model
        self.processor = processor
        self.products = products
        self.matrix = matrix

    def match_image(self, data: bytes, top_k: int = 5) -> list[dict[str, Any]]:
        """The TOP_K products whose photo embeddings are most cosine-similar to the photo in DATA."""
        try:
            image = Image.open(io.BytesIO(data)).convert("RGB")
        except (UnidentifiedImageError, OSError) as error:
            raise HTTPException(status_code=400, detail=f"not a readable image: {error}") from error
        query = image_features(self.model, self.processor, [image])[0]
        scores = self.matrix @ query  # rows and query are unit vectors: cosine similarity
        best = np.argsort(-scores)[:top_k]
        return [
            {**self.products[i], "product_id": self.products[i]["product_id"], "score": float(scores[i])} for i in best
        ]


class QueryLog:
    """Appends one JSON line per answered query (the seed's logs.jsonl); no file, no log."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lock = threading.Lock()

    def write(self, matches: list[dict[str, Any]], took_ms: float) -> None:
        if self.path is None:
            return
        top = matches[0] if matches else {}
        line = {
            "ts": time.time(),
            "endpoint": "/match-image",
            "top_product_id": top.get("product_id"),
            "top_score": top.get("score"),
            "took_ms": round(took_ms, 2),
        }
        with self.lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")


def load_matcher(catalog: Path, embeddings_cache: Path | None, random_catalog_vectors: bool) -> Matcher:
    """The model, the catalog and its matrix (loaded once, at start-up)."""
    started = time.perf_counter()
    model, processor = build_model(), ImageProcessor()
    products = load_catalog(catalog)
    matrix = catalog_matrix(model, processor, products, embeddings_cache, random_catalog_vectors)
    log.info("ready: %d products, matrix %s, %.1f s", len(products), matrix.shape, time.perf_counter() - started)
    return Matcher(model, processor, products, matrix)


def create_app(
    catalog: Path,
    embeddings_cache: Path | None = None,
    random_catalog_vectors: bool = False,
    handler: str = "async",
    log_file: Path | None = None,
) -> FastAPI:
    """The MVP app; the model and the catalog load once, at startup. HANDLER: "async" or "sync" (see above)."""
    if handler not in ("async", "sync"):
        raise ValueError(f"handler must be 'async' or 'sync', not {handler!r}")
    state: dict[str, Any] = {}
    query_log = QueryLog(log_file)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["matcher"] = load_matcher(catalog, embeddings_cache, random_catalog_vectors)
        yield

    app = FastAPI(title="MVP product matcher", lifespan=lifespan)

    def answer(data: bytes, top_k: int) -> dict[str, Any]:
        if not 1 <= top_k <= 100:
            raise HTTPException(status_code=422, detail="top_k must be 1..100")
        started = time.perf_counter()
        matches = state["matcher"].match_image(data, top_k)
        query_log.write(matches, (time.perf_counter() - started) * 1000)
        return {"matches": matches}

    if handler == "async":

        @app.post("/match-image")
        async def match_image_async(file: UploadFile = File(...), top_k: int = 5) -> dict[str, Any]:
            return answer(await file.read(), top_k)  # the model runs on the event loop: one request at a time

    else:

        @app.post("/match-image")
        def match_image_sync(file: UploadFile = File(...), top_k: int = 5) -> dict[str, Any]:
            return answer(file.file.read(), top_k)  # FastAPI runs this in its thread pool

    @app.get("/health")
    def health() -> dict[str, Any]:
        matcher = state.get("matcher")
        return {"status": "ok" if matcher else "starting", "products": len(matcher.products) if matcher else 0}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", type=Path, required=True, help="JSON-lines catalog (product_id, image, ...)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--embeddings-cache", type=Path, help=".npy file: catalog embeddings, reused when valid")
    parser.add_argument(
        "--random-catalog-vectors",
        action="store_true",
        help="fill the catalog matrix with random unit vectors instead of embedding the photos (same search cost)",
    )
    parser.add_argument("--handler", choices=["async", "sync"], default="async", help="route style (see above)")
    parser.add_argument("--log-file", type=Path, help="append one JSON line per query here (the seed's logs.jsonl)")
    parser.add_argument("--threads", type=int, help="torch threads [default: torch's, one per core]")
    args = parser.parse_args()
    if args.threads:  # one thread: a forward pass's CPU cost that other processes on the machine barely inflate
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_app(args.catalog, args.embeddings_cache, args.random_catalog_vectors, args.handler, args.log_file)
    uvicorn.run(app, host=args.host, port=args.port, workers=1)  # uvicorn defaults: info, access log on


if __name__ == "__main__":
    main()
