"""Query-embedding caches: the in-process LRU, the factory, and Redis (a real redis-server on 127.0.0.1)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from prodmatch.matching.cache import EmbeddingCache, create_cache, image_key, text_key
from prodmatch.matching.redis_cache import RedisCache
from tests.api.server import free_port
from tests.servers import RedisServer


def unit(seed: int, dims: int = 8) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    normalised: np.ndarray = vector / np.linalg.norm(vector)
    return normalised


def test_keys_ignore_case_and_spacing_of_texts_but_not_bytes_of_photos() -> None:
    assert text_key("Red  Shirt ") == text_key("red shirt")
    assert image_key(b"abc") != image_key(b"abd")


def test_without_a_url_the_cache_is_a_bounded_lru_in_this_process() -> None:
    cache = create_cache(None, 2, "model", 60)
    assert isinstance(cache, EmbeddingCache)
    for number in range(3):
        cache.put(f"k{number}", unit(number))
    assert cache.get("k0") is None and cache.get("k2") is not None and len(cache) == 2


def test_an_unknown_cache_url_is_refused() -> None:
    with pytest.raises(ValueError, match="redis://"):
        create_cache("memcached://127.0.0.1:11211", 10, "model", 60)


def test_redis_cache_is_shared_by_two_clients_and_keeps_vectors_exactly(redis_server: RedisServer) -> None:
    writer = create_cache(redis_server.url(1), 10, "model-a", 60)
    reader = create_cache(redis_server.url(1), 10, "model-a", 60)
    assert isinstance(writer, RedisCache) and isinstance(reader, RedisCache)
    key, vector = image_key(b"photo-1"), unit(7, 512)
    assert reader.get(key) is None
    writer.put(key, vector)
    found = reader.get(key)
    assert found is not None and found.dtype == np.float32
    np.testing.assert_array_equal(found, vector)
    assert (reader.hits, reader.misses) == (1, 1)
    writer.close()
    reader.close()


def test_redis_keys_are_namespaced_by_model(redis_server: RedisServer) -> None:
    first, other = RedisCache(redis_server.url(2), "model-a", 60), RedisCache(redis_server.url(2), "model-b", 60)
    first.put("text:x", unit(1))
    assert other.get("text:x") is None and first.get("text:x") is not None


def test_redis_entries_expire_after_their_time_to_live(redis_server: RedisServer) -> None:
    cache = RedisCache(redis_server.url(3), "model", ttl_s=0.05)
    cache.put("text:soon-gone", unit(2))
    assert cache.get("text:soon-gone") is not None
    time.sleep(0.2)
    assert cache.get("text:soon-gone") is None


def test_a_redis_that_is_down_reads_as_a_miss_not_an_error() -> None:
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", "model", 60)  # nothing listens there
    cache.put("text:x", unit(3))
    assert cache.get("text:x") is None and cache.misses == 1
