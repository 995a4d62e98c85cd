"""MetadataStore on MongoDB (pymongo): products, vectors, duplicate links, the query log and settings.

MongoDB has no multi-document transaction outside replica sets, so an upsert batch is ordered to be safe when
cut short: new vectors are written first, then the products (whose content hash marks them done), then the
products' old vectors are removed. A batch killed half-way leaves products with their old hash (re-embedded on
the next run, which also removes the orphaned vectors) and never a product without vectors.

Options in the URL's query string (stripped before pymongo sees it): query_log_ttl_days=N expires query-log
entries after N days (a TTL index).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
from bson import Binary, Int64
from pymongo import ASCENDING, DESCENDING, MongoClient, ReplaceOne, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure
from pymongo.uri_parser import parse_uri

from prodmatch.batching import chunks
from prodmatch.stores.common import stack_vectors
from prodmatch.stores.duplicates import duplicate_groups, near_duplicate_links
from prodmatch.stores.filters import Filter, searchable
from prodmatch.stores.mongo_activity import MongoActivity
from prodmatch.stores.mongo_filters import filter_query, search_path, stored_search
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, VectorChanges, VectorLabel

log = logging.getLogger(__name__)
OWN_OPTIONS = ("query_log_ttl_days",)
DEFAULT_DATABASE = "prodmatch"
SERVER_TIMEOUT_MS = 3000  # a store that is down answers within seconds (503), not pymongo's default 30 s
_IN_CHUNK = 5000


class MongoMetadataStore(MongoActivity):
    """The MetadataStore protocol over one MongoDB database (the URL's, or "prodmatch")."""

    def __init__(self, url: str) -> None:
        client_url, options = _split_own_options(url)
        self.url = url
        self.client: MongoClient[dict[str, Any]] = MongoClient(
            client_url, serverSelectionTimeoutMS=SERVER_TIMEOUT_MS, tz_aware=True
        )
        self.db = self.client[parse_uri(client_url)["database"] or DEFAULT_DATABASE]
        self.products, self.vectors = self.db["products"], self.db["vectors"]
        self.links, self.query_log, self.meta = self.db["near_duplicates"], self.db["query_log"], self.db["meta"]
        self._create_indexes(options)

    def _create_indexes(self, options: dict[str, str]) -> None:
        self.products.create_index("image_shas")
        self.vectors.create_index([("product_id", ASCENDING), ("space", ASCENDING)])
        self.vectors.create_index("space")
        self._index_activity(options.get("query_log_ttl_days"))
        for key in self.attribute_keys():
            self._index_attribute(key)

    def _index_attribute(self, key: str) -> None:
        """Indexes on KEY's text and number, where the server allows: filters work without them (by scanning),
        and servers refuse some (MongoDB keeps at most 64 per collection; nx-27017 indexes only paths that are
        identifiers), which must not stop an ingest."""
        for part in ("s", "n"):
            try:
                self.products.create_index(search_path(part, key))
            except OperationFailure as exc:
                log.warning("attribute %r gets no index, its filters scan: %s", key, str(exc).splitlines()[0][:200])

    def close(self) -> None:
        self.client.close()

    def get_meta(self, key: str) -> Any:
        found = self.meta.find_one({"_id": key})
        return None if found is None else found["value"]

    def set_meta(self, key: str, value: Any) -> None:
        self.meta.replace_one({"_id": key}, {"_id": key, "value": value}, upsert=True)

    def products_with_image(self, sha256: str) -> list[str]:
        """Ids of the products that list the image with this SHA-256."""
        # $in, not equality: the same on MongoDB, and the wire servers some deployments use only match arrays so
        query = {"image_shas": {"$in": [sha256]}}
        return sorted(doc["_id"] for doc in self.products.find(query, {"_id": 1}))

    def hashes(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        for chunk in chunks(list(ids), _IN_CHUNK):
            for doc in self.products.find({"_id": {"$in": chunk}}, {"content_hash": 1, "embed_hash": 1}):
                found[doc["_id"]] = (doc["content_hash"], doc["embed_hash"])
        return found

    def upsert(self, items: Sequence[ProductUpsert]) -> VectorChanges:
        """Write a batch in the crash-safe order described in the module docstring."""
        latest = list({item.product.id: item for item in items}.values())  # the last write of an id wins
        if not latest:
            return VectorChanges()
        signatures = self._known_signatures([item.product.id for item in latest])
        changes = self._insert_vectors([item for item in latest if item.vectors is not None])
        self.products.bulk_write(
            [ReplaceOne({"_id": i.product.id}, self._document(i, signatures), upsert=True) for i in latest]
        )
        reembedded = [item.product.id for item in latest if item.vectors is not None]
        changes.merge(self._remove_vectors({"product_id": {"$in": reembedded}}, keep=set(changes.labels)))
        changes.merge(self._relabel([item for item in latest if item.vectors is None]))
        self._remember_keys(latest)
        return changes

    def _insert_vectors(self, items: list[ProductUpsert]) -> VectorChanges:
        changes = VectorChanges()
        total = sum(len(space.vectors) for item in items for space in item.vectors or [])
        if not total:
            return changes
        next_id = self._allocate_ids(total)
        documents = []
        added: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for item in items:
            label = VectorLabel(item.product.id, searchable(item.product.attributes))
            for space in item.vectors or []:
                shas = [*(space.image_shas or [])] + [None] * (len(space.vectors) - len(space.image_shas or []))
                ids = np.arange(next_id, next_id + len(space.vectors), dtype=np.int64)
                next_id += len(space.vectors)
                for vector_id, vector, sha in zip(ids.tolist(), space.vectors, shas, strict=True):
                    documents.append(_vector_document(vector_id, item.product.id, space.space, sha, vector))
                added.setdefault(space.space, []).append((ids, space.vectors))
                changes.labels.update(dict.fromkeys(ids.tolist(), label))
        # stacked once per space: merging item by item re-copied the batch's vectors for every item (quadratic)
        for space_name, parts in added.items():
            changes.added[space_name] = (np.concatenate([p[0] for p in parts]), np.vstack([p[1] for p in parts]))
        self.vectors.insert_many(documents, ordered=False)
        return changes

    def _allocate_ids(self, count: int) -> int:
        """The first of COUNT fresh vector ids (a counter document: ids are never reused)."""
        counter = self.db["counters"].find_one_and_update(
            {"_id": "vectors"}, {"$inc": {"next": count}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert counter is not None  # upsert=True with ReturnDocument.AFTER always returns the document
        return int(counter["next"]) - count + 1

    def _known_signatures(self, ids: list[str]) -> dict[str, bytes]:
        known: dict[str, bytes] = {}
        for chunk in chunks(ids, _IN_CHUNK):
            for doc in self.products.find({"_id": {"$in": chunk}}, {"images": 1}):
                known.update({i["sha256"]: sig for i in doc["images"] if (sig := _signature(i.get("signature")))})
        return known

    def _document(self, item: ProductUpsert, signatures: dict[str, bytes]) -> dict[str, Any]:
        product = item.product
        images = [
            {
                "path": ref.path,
                "sha256": ref.sha256,
                "signature": _binary(ref.signature or signatures.get(ref.sha256)),
                "source_url": ref.source_url,
            }
            for ref in product.images
        ]
        return {
            "_id": product.id,
            "name": product.name,
            "text": product.text,
            "attributes": product.attributes,
            "search": stored_search(product.attributes),
            "images": images,
            "image_shas": [ref.sha256 for ref in product.images],  # indexed: which products list a photo
            "content_hash": product.content_hash,
            "embed_hash": product.embed_hash,
            "updated_at": datetime.now(UTC),
        }

    def _remove_vectors(self, query: dict[str, Any], keep: frozenset[int] | set[int] = frozenset()) -> VectorChanges:
        changes = VectorChanges()
        doomed: list[int] = []
        for doc in self.vectors.find(query, {"space": 1}):
            if int(doc["_id"]) not in keep:
                changes.removed.setdefault(doc["space"], []).append(int(doc["_id"]))
                doomed.append(doc["_id"])
        for chunk in chunks(doomed, _IN_CHUNK):
            self.vectors.delete_many({"_id": {"$in": chunk}})
        return changes

    def _relabel(self, items: list[ProductUpsert]) -> VectorChanges:
        changes = VectorChanges()
        labels = {item.product.id: VectorLabel(item.product.id, searchable(item.product.attributes)) for item in items}
        for doc in self.vectors.find({"product_id": {"$in": list(labels)}}, {"space": 1, "product_id": 1}):
            changes.relabelled.setdefault(doc["space"], []).append(int(doc["_id"]))
            changes.labels[int(doc["_id"])] = labels[doc["product_id"]]
        return changes

    def _remember_keys(self, items: Sequence[ProductUpsert]) -> None:
        known = self.attribute_keys()
        new = {key for item in items for key in item.product.attributes} - known
        if new:
            for key in new:
                self._index_attribute(key)
            self.set_meta("attribute_keys", sorted(known | new))

    def delete(self, product_id: str) -> VectorChanges:
        changes = self._remove_vectors({"product_id": product_id})
        self.products.delete_one({"_id": product_id})
        self.db["feedback"].delete_many({"product_id": product_id})  # as SQL's foreign key cascades
        return changes

    def get(self, ids: Sequence[str]) -> dict[str, Product]:
        found: dict[str, Product] = {}
        for chunk in chunks(list(ids), _IN_CHUNK):
            found.update({doc["_id"]: _to_product(doc) for doc in self.products.find({"_id": {"$in": chunk}})})
        return found

    def page(self, offset: int, limit: int, filters: Sequence[Filter] = ()) -> list[Product]:
        cursor = self.products.find(filter_query(filters)).sort("_id", ASCENDING).skip(offset).limit(limit)
        return [_to_product(doc) for doc in cursor]

    def count(self, filters: Sequence[Filter] = ()) -> int:
        return int(self.products.count_documents(filter_query(filters)))

    def catalog_stamp(self) -> str:
        latest = self.products.find_one({}, {"updated_at": 1}, sort=[("updated_at", DESCENDING)])
        return f"{self.products.count_documents({})}:{latest['updated_at'] if latest else None}"

    def attribute_keys(self) -> set[str]:
        return set(self.get_meta("attribute_keys") or [])

    def vector_ids(self, space: str, filters: Sequence[Filter] = ()) -> np.ndarray:
        if not filters:
            return _ids(self.vectors.find({"space": space}, {"_id": 1}))
        products = [doc["_id"] for doc in self.products.find(filter_query(filters), {"_id": 1})]
        found = [
            _ids(self.vectors.find({"space": space, "product_id": {"$in": chunk}}, {"_id": 1}))
            for chunk in chunks(products, _IN_CHUNK)
        ]
        return np.concatenate(found) if found else np.zeros(0, np.int64)

    def vector_owners(self, vector_ids: Sequence[int]) -> dict[int, str]:
        owners: dict[int, str] = {}
        for chunk in chunks([Int64(i) for i in vector_ids], _IN_CHUNK):
            owners.update(
                {int(d["_id"]): d["product_id"] for d in self.vectors.find({"_id": {"$in": chunk}}, {"product_id": 1})}
            )
        return owners

    def product_vectors(self, product_ids: Sequence[str], space: str) -> tuple[list[str], np.ndarray]:
        owners: list[str] = []
        blobs: list[bytes] = []
        for chunk in chunks(list(product_ids), _IN_CHUNK):
            for doc in self.vectors.find(
                {"space": space, "product_id": {"$in": chunk}}, {"product_id": 1, "vector": 1}
            ):
                owners.append(doc["product_id"])
                blobs.append(bytes(doc["vector"]))
        return owners, stack_vectors(blobs)

    def iter_vectors(
        self, space: str, ids: np.ndarray, batch: int = 4096
    ) -> Iterator[tuple[np.ndarray, np.ndarray, list[VectorLabel]]]:
        for chunk in chunks(ids.tolist(), batch):
            docs = list(self.vectors.find({"_id": {"$in": [Int64(i) for i in chunk]}, "space": space}))
            attributes = {
                d["_id"]: d["attributes"]
                for d in self.products.find({"_id": {"$in": list({d["product_id"] for d in docs})}}, {"attributes": 1})
            }
            docs = [d for d in docs if d["product_id"] in attributes]
            labels = [VectorLabel(d["product_id"], searchable(attributes[d["product_id"]])) for d in docs]
            yield (
                np.array([int(d["_id"]) for d in docs], np.int64),
                stack_vectors([bytes(d["vector"]) for d in docs]),
                labels,
            )

    def link_near_duplicates(self, pairs: Sequence[tuple[int, int]], max_difference: float) -> int:
        """Record image pairs (by vector id) that are the same photo saved twice (duplicates.py decides which).
        Returns the number of new links."""
        new = 0
        for a, b in near_duplicate_links(pairs, max_difference, self._image_shas, self._signatures):
            try:
                self.links.insert_one({"_id": f"{a}|{b}", "sha_a": a, "sha_b": b})
                new += 1
            except DuplicateKeyError:
                pass
        return new

    def _image_shas(self, vector_ids: list[int]) -> dict[int, str | None]:
        found: dict[int, str | None] = {}
        for chunk in chunks([Int64(i) for i in vector_ids], _IN_CHUNK):
            docs = self.vectors.find({"_id": {"$in": chunk}}, {"image_sha": 1})
            found.update({int(d["_id"]): d.get("image_sha") for d in docs})
        return found

    def _signatures(self, shas: list[str]) -> dict[str, bytes | None]:
        wanted = set(shas)
        found: dict[str, bytes | None] = {}
        for chunk in chunks(shas, _IN_CHUNK):
            for doc in self.products.find({"image_shas": {"$in": chunk}}, {"images": 1}):
                for image in doc["images"]:
                    if image["sha256"] in wanted and (signature := _signature(image.get("signature"))):
                        found[image["sha256"]] = signature
        return found

    def duplicate_groups(self, include_near: bool = True) -> list[list[str]]:
        """Groups of products listing the same photo: byte-identical files, and (include_near) re-saved copies."""
        owners: dict[str, set[str]] = {}
        for doc in self.products.find({}, {"image_shas": 1}):
            for sha in doc.get("image_shas", []):
                owners.setdefault(sha, set()).add(doc["_id"])
        links = [(link["sha_a"], link["sha_b"]) for link in self.links.find()] if include_near else []
        return duplicate_groups(owners, links)


def _split_own_options(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    own = {k: v for k, v in query if k in OWN_OPTIONS}
    rest = urlencode([(k, v) for k, v in query if k not in OWN_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), own


def _vector_document(
    vector_id: int, product_id: str, space: str, sha: str | None, vector: np.ndarray
) -> dict[str, Any]:
    return {
        "_id": Int64(vector_id),
        "product_id": product_id,
        "space": space,
        "image_sha": sha,
        "vector": Binary(np.asarray(vector, dtype="<f4").tobytes()),
    }


def _binary(data: bytes | None) -> str | None:
    """Image signatures are kept as hex text: nx-27017, the wire-protocol server the tests run against, cannot
    replace a document holding binary fields (vectors, only ever inserted, stay binary)."""
    return None if data is None else data.hex()


def _signature(stored: str | bytes | None) -> bytes | None:
    if not stored:
        return None
    return bytes.fromhex(stored) if isinstance(stored, str) else bytes(stored)


def _to_product(doc: dict[str, Any]) -> Product:
    images = [
        ImageRef(i["path"], i["sha256"], _signature(i.get("signature")), i.get("source_url")) for i in doc["images"]
    ]
    return Product(
        doc["_id"], doc["name"], doc["text"], dict(doc["attributes"]), images, doc["content_hash"], doc["embed_hash"]
    )


def _ids(cursor: Any) -> np.ndarray:
    return np.fromiter((int(doc["_id"]) for doc in cursor), dtype=np.int64)
