"""Catalog readers: every row comes back with its line number; bad rows carry an error, the file goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from prodmatch.catalog.readers import parse_scalar, read_catalog
from prodmatch.errors import CatalogError


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_csv_rows_keep_numbers_as_numbers(tmp_path: Path) -> None:
    rows = list(read_catalog(write(tmp_path / "c.csv", "id,name,price,stock,code\n1,Shirt,19.99,3,00123\n")))
    assert rows[0].line == 2
    assert rows[0].data == {"id": 1, "name": "Shirt", "price": 19.99, "stock": 3, "code": "00123"}


def test_csv_quoted_newlines_report_the_starting_line(tmp_path: Path) -> None:
    text = 'id,name\n1,"two\nlines"\n2,plain\n'
    rows = list(read_catalog(write(tmp_path / "c.csv", text)))
    assert [(r.line, r.data["id"]) for r in rows] == [(2, 1), (4, 2)]


def test_csv_row_with_wrong_field_count_is_an_error_row(tmp_path: Path) -> None:
    rows = list(read_catalog(write(tmp_path / "c.csv", "id,name\n1,a\n2,b,extra\n3,c\n")))
    assert [r.error is None for r in rows] == [True, False, True]
    assert rows[1].line == 3 and "expected 2 fields" in (rows[1].error or "")


def test_non_utf8_row_is_rejected_with_its_line_and_the_rest_survive(tmp_path: Path) -> None:
    content = "id,name\n1,caf\u00e9\n".encode() + b"2,caf\xe9 latin-1\n" + b"3,plain\n"
    rows = list(read_catalog(write(tmp_path / "c.csv", content)))
    assert rows[0].data["name"] == "café" and rows[2].data["id"] == 3
    assert rows[1].line == 3 and "not valid UTF-8 (byte 0xe9)" in (rows[1].error or "")


def test_jsonl_malformed_line_is_reported_and_others_read(tmp_path: Path) -> None:
    text = '{"id": "a", "price": 2}\n{"id": "b", oops}\n\n[1, 2]\n{"id": "c"}\n'
    rows = list(read_catalog(write(tmp_path / "c.jsonl", text)))
    assert [(r.line, r.error is None) for r in rows] == [(1, True), (2, False), (4, False), (5, True)]
    assert "malformed JSON" in (rows[1].error or "") and "expected a JSON object" in (rows[2].error or "")


def test_json_array_rows_carry_the_line_they_start_on(tmp_path: Path) -> None:
    text = '[\n  {"id": 1,\n   "name": "a"},\n  {"id": 2}\n]\n'
    rows = list(read_catalog(write(tmp_path / "c.json", text)))
    assert [(r.line, r.data["id"]) for r in rows] == [(2, 1), (4, 2)]


def test_json_that_is_not_an_array_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="array of objects"):
        list(read_catalog(write(tmp_path / "c.json", '{"id": 1}')))


@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl", "empty.json"])
def test_empty_catalog_yields_no_rows(tmp_path: Path, name: str) -> None:
    assert list(read_catalog(write(tmp_path / name, ""))) == []


def test_unknown_extension_and_missing_file_are_catalog_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="unknown catalog format"):
        list(read_catalog(write(tmp_path / "c.xlsx", "x")))
    with pytest.raises(CatalogError, match="does not exist"):
        list(read_catalog(tmp_path / "missing.csv"))


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("42", 42),
        ("-3", -3),
        ("0", 0),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("007", "007"),
        ("0.5", 0.5),
        ("", None),
        ("abc", "abc"),
    ],
)
def test_parse_scalar(cell: str, value: object) -> None:
    assert parse_scalar(cell) == value
