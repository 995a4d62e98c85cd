"""bench.lexical: synthetic products go through a real SQLite store into the lexical index it times."""

from __future__ import annotations

from pathlib import Path

from prodmatch.bench.lexical import build, synthetic_products


def test_synthetic_products_carry_the_attributes_queries_name() -> None:
    products = synthetic_products(50)
    assert len({p.id for p in products}) == 50
    assert all(
        p.name == f"{p.attributes['Colour']} {p.attributes['ProductType']} style {i}" for i, p in enumerate(products)
    )


def test_build_reads_every_product_back_from_the_store(tmp_path: Path) -> None:
    figures = build(120, tmp_path)
    assert figures["products"] == 120
    assert figures["bm25_matrix_mb"] > 0 and figures["build_s"] >= 0 and figures["query_median_ms"] > 0
