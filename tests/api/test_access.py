"""Who may call the API: API keys and their scopes, and rate limits (fake model, a private catalog per test)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from prodmatch.api.app import create_app
from prodmatch.application.keys import create_key, revoke_key
from prodmatch.composition import open_catalog
from prodmatch.config import Settings
from tests.fakes import FakeEmbedders

QUERY = {"text": "yellow t-shirt", "top_k": 3}


def with_serve(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"serve": settings.serve.model_copy(update=changes)})


@contextmanager
def app(settings: Settings, embedders: FakeEmbedders) -> Iterator[TestClient]:
    with TestClient(create_app(settings, embedders=embedders)) as client:
        yield client


def make_keys(settings: Settings, embedders: FakeEmbedders) -> dict[str, str]:
    """A match key, an admin key and a revoked admin key in SETTINGS' catalog."""
    with open_catalog(settings, embedders=embedders) as catalog:
        keys = {scope: create_key(catalog, scope, f"{scope} key")[1] for scope in ("match", "admin")}  # type: ignore[arg-type]
        revoked, keys["revoked"] = create_key(catalog, "admin", "gone")
        revoke_key(catalog, revoked.id)
    return keys


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_required_keys_are_checked_and_scopes_enforced(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> None:
    keys = make_keys(fake_myntra, fake_embedders)
    with app(with_serve(fake_myntra, require_keys=True), fake_embedders) as client:
        missing = client.post("/v1/match/text", json=QUERY)
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthenticated"
        assert missing.headers["www-authenticate"] == "Bearer"
        for wrong in ("pm_000000000000_" + "x" * 40, keys["revoked"], "not-a-key", keys["match"][:-1] + "?"):
            assert client.post("/v1/match/text", json=QUERY, headers=bearer(wrong)).status_code == 401, wrong
        assert client.post("/v1/match/text", json=QUERY, headers=bearer(keys["match"])).status_code == 200
        assert client.get("/v1/products/36310", headers={"X-API-Key": keys["match"]}).status_code == 200
        refused = client.delete("/v1/products/36310", headers=bearer(keys["match"]))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert client.get("/v1/products/36310", headers=bearer(keys["admin"])).status_code == 200  # not deleted
        assert client.delete("/v1/products/36310", headers=bearer(keys["admin"])).status_code == 204
        assert client.get("/health").status_code == 200  # liveness needs no key


def test_loopback_is_open_until_the_catalog_has_a_key(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> None:
    with app(fake_myntra, fake_embedders) as client:
        assert client.post("/v1/match/text", json=QUERY).status_code == 200
    keys = make_keys(fake_myntra, fake_embedders)
    with app(fake_myntra, fake_embedders) as client:
        assert client.post("/v1/match/text", json=QUERY).status_code == 401
        assert client.post("/v1/match/text", json=QUERY, headers=bearer(keys["match"])).status_code == 200


def test_beyond_loopback_keys_are_required_unless_explicitly_waived(
    fake_myntra: Settings, fake_embedders: FakeEmbedders
) -> None:
    with app(with_serve(fake_myntra, host="0.0.0.0"), fake_embedders) as client:
        assert client.post("/v1/match/text", json=QUERY).status_code == 401
    with app(with_serve(fake_myntra, host="0.0.0.0", insecure_no_auth=True), fake_embedders) as client:
        assert client.post("/v1/match/text", json=QUERY).status_code == 200


def test_a_client_over_its_rate_gets_429_with_retry_after(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> None:
    with app(with_serve(fake_myntra, rate_per_s=0.01, rate_burst=2), fake_embedders) as client:
        statuses = [client.post("/v1/match/text", json=QUERY).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = client.post("/v1/match/text", json=QUERY)
        assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
