"""Read CSV, JSONL or JSON-array catalogs into raw rows, each tagged with its line number.

A row that cannot be parsed becomes a RawRow with an error, never an exception: the rest of the file goes on.
Bytes that are not UTF-8 are kept as surrogate escapes while reading, so the row they sit in can be
rejected with its line number instead of failing the whole file.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prodmatch.errors import CatalogError

_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass
class RawRow:
    line: int
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("csv", "tsv"):
        return "csv"
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix == "json":
        return "json"
    raise CatalogError(f"{path}: unknown catalog format {suffix!r}; use one of: .csv, .jsonl, .json")


def read_catalog(path: Path) -> Iterator[RawRow]:
    """Rows of the catalog at PATH, lazily, in file order."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"catalog {path} does not exist")
    readers = {"csv": _read_csv, "jsonl": _read_jsonl, "json": _read_json_array}
    yield from readers[detect_format(path)](path)


def _bad_bytes(values: Any) -> str | None:
    """A message when any string in VALUES holds undecodable bytes."""
    for value in values:
        if isinstance(value, str) and (found := _SURROGATE.search(value)):
            byte = ord(found.group()) - 0xDC00
            return f"not valid UTF-8 (byte 0x{byte:02x}); save the catalog as UTF-8"
    return None


def _read_csv(path: Path) -> Iterator[RawRow]:
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        sample = handle.read(64 * 1024)
        handle.seek(0)
        dialect = _sniff(sample, path)
        reader = csv.reader(handle, dialect)
        header = next(reader, None)
        if header is None:
            return
        header = [name.strip() for name in header]
        if error := _bad_bytes(header):
            raise CatalogError(f"{path}: header {error}")
        line = reader.line_num
        for values in reader:
            start, line = line + 1, reader.line_num
            if not any(value.strip() for value in values):
                continue
            yield _csv_row(start, header, values)


def _sniff(sample: str, path: Path) -> type[csv.Dialect] | csv.Dialect:
    if path.suffix.lower() == ".tsv":
        return csv.excel_tab
    try:
        return csv.Sniffer().sniff(sample.split("\n", 1)[0], delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def _csv_row(line: int, header: list[str], values: list[str]) -> RawRow:
    if len(values) != len(header):
        return RawRow(line, error=f"expected {len(header)} fields, found {len(values)}")
    if error := _bad_bytes(values):
        return RawRow(line, error=error)
    return RawRow(line, {name: parse_scalar(value) for name, value in zip(header, values, strict=True)})


def _read_jsonl(path: Path) -> Iterator[RawRow]:
    with open(path, encoding="utf-8-sig", errors="surrogateescape") as handle:
        for line_number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            if error := _bad_bytes([text]):
                yield RawRow(line_number, error=error)
                continue
            yield _json_row(line_number, text)


def _json_row(line: int, text: str) -> RawRow:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return RawRow(line, error=f"malformed JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(value, dict):
        return RawRow(line, error=f"expected a JSON object, found {type(value).__name__}")
    return RawRow(line, value)


def _read_json_array(path: Path) -> Iterator[RawRow]:
    """A JSON array of objects; each row's 'line' is the line its object starts on."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise CatalogError(f"{path}: not valid UTF-8 at line {bad_line}; save the catalog as UTF-8") from exc
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if position >= len(text):
        return
    if text[position] != "[":
        raise CatalogError(f"{path}: a .json catalog must be an array of objects")
    position = _skip_space(text, position + 1)
    while position < len(text) and text[position] != "]":
        line = text.count("\n", 0, position) + 1
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise CatalogError(f"{path}: malformed JSON at line {exc.lineno}: {exc.msg}") from exc
        yield RawRow(line, value) if isinstance(value, dict) else RawRow(line, error="expected a JSON object")
        position = _skip_space(text, position)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


_LEADING_ZERO = re.compile(r"^[+-]?0\d")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")


def parse_scalar(value: str) -> Any:
    """CSV cells: numbers become numbers, "00123" stays text (a code, not a quantity), empty becomes None."""
    value = value.strip()
    if not value:
        return None
    if _LEADING_ZERO.match(value):
        return value
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        return float(value)
    return value
