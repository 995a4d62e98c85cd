"""The API fuzzed from its own OpenAPI schema (schemathesis): every operation with generated valid and invalid
inputs against the real app (a real uvicorn on 127.0.0.1, the fake model over a copy of myntra-dev). No response
may be a 5xx, and every response must be one the schema declares (status code, content type, body shape, headers).
Bounded for CI: a fixed number of examples per operation, derandomised (the same cases on every run)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from prodmatch.config import Settings
from tests.api.live import live_app
from tests.conftest import BuiltCatalog
from tests.fakes import FakeEmbedders

EXAMPLES = 40
# "A schema-valid request must be accepted" does not hold for this API, by design: what a schema cannot say (an
# empty or undecodable photo, a filter on an unknown attribute, a product with nothing to match on) is refused
# with a documented 400. Every other check runs: no 5xx, documented statuses, content types, bodies and headers.
SEMANTIC_400 = [positive_data_acceptance]


@pytest.fixture(scope="module")
def base_url(
    base_settings: Settings, fake_myntra_template: BuiltCatalog, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    data_dir = Path(tmp_path_factory.mktemp("fuzz")) / "data"
    shutil.copytree(fake_myntra_template.data_dir, data_dir)
    # no rate limit: the fuzzer sends far more than one client may (rate limits: test_access.py, test_abuse.py)
    serve = base_settings.serve.model_copy(update={"rate_per_s": 0.0})
    with live_app(base_settings.model_copy(update={"data_dir": data_dir, "serve": serve}), FakeEmbedders()) as url:
        yield url


@pytest.fixture(scope="module")
def api_schema(base_url: str) -> OpenApiSchema:
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


def test_api_conforms_to_its_schema_and_never_fails_with_5xx(api_schema: OpenApiSchema, base_url: str) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 13  # every route is in the schema, and so fuzzed
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Case) -> None:
            case.call_and_validate(base_url=base_url, excluded_checks=SEMANTIC_400)

        fuzz()


def test_the_schema_documents_the_error_model_and_every_error_status(api_schema: OpenApiSchema) -> None:
    raw = api_schema.raw_schema
    assert raw["components"]["schemas"]["Error"]["required"] == ["error"]
    put = raw["paths"]["/v1/products/{product_id}"]["put"]["responses"]
    assert {"200", "400", "401", "403", "404", "413", "422", "429", "503"} <= set(put)
    assert put["429"]["headers"]["Retry-After"] and put["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert "text/plain" in raw["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert "503" in raw["paths"]["/ready"]["get"]["responses"]
