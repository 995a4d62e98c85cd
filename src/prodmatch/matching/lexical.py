"""Lexical text search: BM25 (bm25s) over each product's searchable text (name + text columns) and its short
attribute values, and recognition of catalog attribute values ("navy blue", "tshirts") in a query.

Why a lexical index beside the dense one: catalog text queries are mostly attribute words and names ("navy blue
tshirts", "nike air max 270"). A sentence embedding blurs them ("navy" ~ "blue", "270" ~ any number); BM25 keeps
exact words and rare tokens. One in-process library serves every metadata backend, so a query scores the same on
SQLite, PostgreSQL and MongoDB (their native full-text ranks differ: FTS5 is BM25, ts_rank and $text are not).

Words are normalised the same way for products and queries: lower case, "t-shirt"/"t shirt" -> "tshirt", split on
anything but letters and digits, a light plural fold ("shirts" -> "shirt", "dresses" -> "dress", "jeans" kept).

Scores are absolute, not relative to the other results, so the match decision can use them:

    lexical(q, p) = BM25(q, p) / (sum of idf(t) over the distinct query words t)

in [0, 1): BM25 here is Lucene's, idf(t) * tf / (tf + k1 * (1 - b + b * length / average length)), so idf(t) is
the most one word can add (a word found once in a product of average length adds idf(t) / (1 + k1)). A word the
catalog never uses counts in the denominator with the idf of an unseen word, so a query about something the
catalog lacks scores low.

Attribute values are recognised longest match first: in "navy blue tshirts" the Colour value "navy blue" is one
phrase, never also "blue". A product's attribute share is the share of recognised phrases it holds: as an attribute
value, or in its own text read the same way (a "Navy Blue T-shirt" title holds "navy blue" and "tshirt", not
"blue"), so a product whose type is only in its name ("Zyxel Quantum Jacket") is not outranked by every jacket.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prodmatch.stores.conditions import PythonBackend, translate
from prodmatch.stores.filters import Filter, condition_of, searchable
from prodmatch.stores.protocols import MetadataStore
from prodmatch.stores.records import Product

log = logging.getLogger(__name__)
K1, B = 1.2, 0.75  # classic BM25 constants: the prior study (docs/benchmarks.md) used them
MAX_VALUE_CHARS = 40  # longer text attributes are descriptions, not values a query names
_PAGE = 2000
_TSHIRT = re.compile(r"\bt[\s\-]?shirts?\b")
_WORD = re.compile(r"[^\W_]+")
# Words whose final "s" is not a plural (or whose singular nobody types).
_KEEP_S = ("ss", "us", "is", "jeans", "shorts", "capris", "trousers", "leggings", "pants", "sweatpants", "glasses")


def singular(word: str) -> str:
    """A light plural fold: "shirts" -> "shirt", "dresses" -> "dress", "accessories" -> "accessory"."""
    if len(word) <= 3 or word.endswith(_KEEP_S) or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


def normalise(text: str, memo: dict[str, str] | None = None) -> list[str]:
    """The words of TEXT as both sides of a lexical match see them; MEMO caches singular() over many texts."""
    words = _WORD.findall(_TSHIRT.sub(" tshirt ", text.lower()))
    if memo is None:
        return [singular(word) for word in words]
    return [memo[word] if word in memo else memo.setdefault(word, singular(word)) for word in words]


def attribute_values(product: Product) -> dict[str, str]:
    """The product's short text attribute values: the ones a query may name."""
    return {
        key: value
        for key, value in product.attributes.items()
        if isinstance(value, str) and value.strip() and len(value) <= MAX_VALUE_CHARS
    }


@dataclass(frozen=True)
class Phrase:
    """A catalog attribute value found in a query: its normalised WORDS at token positions SPAN, and the
    (attribute key, value) pairs that read as those words."""

    words: tuple[str, ...]
    span: tuple[int, int]
    values: frozenset[tuple[str, str]]


class AttributeMatcher:
    """Finds catalog attribute values in a query, longest first ("navy blue" before "blue")."""

    def __init__(self, products: Iterable[dict[str, str]]) -> None:
        distinct = {item for values in products for item in values.items()}
        phrases: dict[tuple[str, ...], set[tuple[str, str]]] = {}
        for key, value in distinct:
            words = tuple(normalise(value))
            if words:
                phrases.setdefault(words, set()).add((key, value))
        self._phrases = {words: frozenset(values) for words, values in phrases.items()}
        self._longest = max(map(len, self._phrases), default=0)

    def recognise(self, words: Sequence[str]) -> list[Phrase]:
        """The phrases in WORDS (normalised), scanning left to right, the longest known phrase at each position."""
        found: list[Phrase] = []
        start = 0
        while start < len(words):
            for size in range(min(self._longest, len(words) - start), 0, -1):
                phrase = tuple(words[start : start + size])
                if (values := self._phrases.get(phrase)) is not None:
                    found.append(Phrase(phrase, (start, start + size), values))
                    start += size
                    break
            else:
                start += 1
        return found


def attribute_share(phrases: Sequence[Phrase], held: frozenset[tuple[str, ...]]) -> float:
    """Share of PHRASES among the phrases a product HOLDS; 0 when nothing was recognised."""
    return sum(phrase.words in held for phrase in phrases) / len(phrases) if phrases else 0.0


@dataclass
class LexicalQuery:
    """A query as the lexical index sees it: its words, the BM25 score of every product, the phrases found."""

    words: list[str]
    scores: np.ndarray  # normalised lexical score per product, in index order
    phrases: list[Phrase]


class LexicalIndex:
    """BM25 over products' text and short attribute values, with the catalog's attribute values recognised."""

    def __init__(self, products: Sequence[Product]) -> None:
        import bm25s  # loaded with the first index, not with the package

        self.ids = [product.id for product in products]
        self._row = {product_id: row for row, product_id in enumerate(self.ids)}
        # each row's place in id order: equal scores rank by id, whatever order the store listed products in
        self._id_rank = np.argsort(np.argsort(np.asarray(self.ids, dtype=str), kind="stable"), kind="stable")
        self.attributes = [product.attributes for product in products]  # what filters read
        values = [attribute_values(product) for product in products]
        memo: dict[str, str] = {}
        texts = [normalise(product.text, memo) for product in products]
        read: dict[str, tuple[str, ...]] = {}  # a catalog has few distinct values: normalise each once
        value_words = [
            [read[v] if v in read else read.setdefault(v, tuple(normalise(v, memo))) for v in held.values()]
            for held in values
        ]
        documents = [
            text + [word for value in held for word in value] for text, held in zip(texts, value_words, strict=True)
        ]
        self._bm25 = bm25s.BM25(k1=K1, b=B, method="lucene")
        if documents:
            self._bm25.index(documents, show_progress=False)
        self._frequency = Counter(word for document in documents for word in set(document))  # document frequency
        self.matcher = AttributeMatcher(values)
        # the phrases each product holds: its values, and the values its own text names (read longest first)
        self._held = [
            frozenset(held) | frozenset(phrase.words for phrase in self.matcher.recognise(text))
            for text, held in zip(texts, value_words, strict=True)
        ]

    @classmethod
    def build(cls, store: MetadataStore) -> LexicalIndex:
        """The index of every product in STORE, read a page at a time."""
        products: list[Product] = []
        total = store.count()
        for offset in range(0, total, _PAGE):
            products.extend(store.page(offset, _PAGE))
        return cls(products)

    def __len__(self) -> int:
        return len(self.ids)

    def matrix_bytes(self) -> int:
        """Size of the BM25 sparse matrix (bm25s keeps it as a dict of arrays): what grows with the catalog."""
        arrays = self._bm25.scores.values() if isinstance(self._bm25.scores, dict) else ()
        return int(sum(array.nbytes for array in arrays if isinstance(array, np.ndarray)))

    def idf(self, word: str) -> float:
        """BM25's (Lucene) inverse document frequency; an unseen word gets the highest."""
        count = self._frequency.get(word, 0)
        return math.log(1 + (len(self.ids) - count + 0.5) / (count + 0.5))

    def query(self, text: str) -> LexicalQuery:
        """Normalised lexical scores of every product for TEXT, and the attribute values it names."""
        words = list(dict.fromkeys(normalise(text)))
        scores = np.zeros(len(self.ids), dtype=np.float64)
        known = [word for word in words if word in self._frequency]
        if known and self.ids:
            ceiling = sum(self.idf(word) for word in words)
            scores = np.asarray(self._bm25.get_scores(known), dtype=np.float64) / ceiling
        return LexicalQuery(words, scores, self.matcher.recognise(normalise(text)))

    def top(self, query: LexicalQuery, top_k: int, filters: Sequence[Filter] = ()) -> dict[str, float]:
        """Up to TOP_K products with a positive lexical score that pass FILTERS, best first (ties in id order)."""
        condition = condition_of(filters)
        passes = translate(condition, PythonBackend()) if condition is not None else None
        positive = np.flatnonzero(query.scores > 0)
        wanted = top_k if passes is None else 4 * top_k
        while True:
            # Sorting only the best WANTED rows (and the rows tied with the last): at 100k products a common word
            # gives most rows a score, and sorting them all cost ~10 ms a query.
            best = self._best_rows(query.scores, positive, wanted)
            found: dict[str, float] = {}
            for row in best[np.lexsort((self._id_rank[best], -query.scores[best]))].tolist():
                if len(found) >= top_k:
                    break
                # the reference predicate over searchable(): what every store's own filter translation agrees with
                if passes is None or passes(searchable(self.attributes[row])):
                    found[self.ids[row]] = float(query.scores[row])
            if len(found) >= top_k or len(best) == len(positive):
                return found
            wanted *= 8  # a narrow filter: read further down the ranking

    @staticmethod
    def _best_rows(scores: np.ndarray, rows: np.ndarray, wanted: int) -> np.ndarray:
        """The ROWS scoring at least the WANTED-th best score among them: a prefix of their ranking, ties kept."""
        if len(rows) <= wanted:
            return rows
        cut = np.partition(scores[rows], len(rows) - wanted)[len(rows) - wanted]
        kept: np.ndarray = rows[scores[rows] >= cut]
        return kept

    def score(self, query: LexicalQuery, product_id: str) -> float:
        """PRODUCT_ID's lexical score (0 for a product the index does not hold)."""
        row = self._row.get(product_id)
        return 0.0 if row is None else float(query.scores[row])

    def share(self, query: LexicalQuery, product_id: str) -> float:
        """Share of the query's recognised attribute values that PRODUCT_ID holds."""
        row = self._row.get(product_id)
        return 0.0 if row is None else attribute_share(query.phrases, self._held[row])


SAVED_FORMAT = 2  # bump when LexicalIndex's fields change: an older file is then rebuilt, not misread


def load_saved(path: Path, stamp: str) -> LexicalIndex | None:
    """The index saved at PATH if it was built from the catalog STAMP names (MetadataStore.catalog_stamp), else
    None. The file is the catalog folder's own (written by save_index), so unpickling it trusts nothing new."""
    try:
        with path.open("rb") as source:
            saved_format, saved_stamp, index = pickle.load(source)
    except FileNotFoundError:
        return None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        log.warning("lexical index %s unreadable (%s): rebuilding it", path, exc)
        return None
    if saved_format != SAVED_FORMAT or saved_stamp != stamp or not isinstance(index, LexicalIndex):
        return None
    return index


def save_index(index: LexicalIndex, path: Path, stamp: str) -> None:
    """Write INDEX for catalog STAMP atomically (a reader sees the old file or the new one); a folder that cannot
    be written to only costs the next start a rebuild."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with partial.open("wb") as target:
            pickle.dump((SAVED_FORMAT, stamp, index), target, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        log.warning("lexical index not saved to %s (%s): the next start rebuilds it", path, exc)
