"""Store URLs: their scheme, their options, and the driver each needs (a pip extra, imported only when chosen).

Metadata: sqlite:///PATH, postgresql://USER[:PASSWORD]@HOST[:PORT]/DB, mongodb://HOST[:PORT]/DB (mongodb+srv too).
Vectors: faiss:///DIR, pgvector://USER[:PASSWORD]@HOST[:PORT]/DB, qdrant://HOST[:PORT] (qdrant+https:// for TLS),
qdrant+local:///DIR, milvus://HOST[:PORT] (a Milvus standalone or cluster; milvus-lite's server),
chroma://HOST[:PORT] (a Chroma server). A query string passes options: ?prefix=NAME puts the tables or
collections of one catalog under NAME (default prodmatch), ?api_key=KEY for Qdrant.
"""

from __future__ import annotations

import importlib.util
from urllib.parse import parse_qs, urlsplit, urlunsplit

from prodmatch.errors import StoreConfigError

DEFAULT_PREFIX = "prodmatch"


def scheme_of(url: str) -> str:
    scheme = urlsplit(url).scheme
    if not scheme:
        raise StoreConfigError(f"store URL {url!r} has no scheme (like postgresql://, qdrant://)")
    return scheme


def family_of(url: str) -> str:
    """The scheme without its transport variant: qdrant+https -> qdrant, mongodb+srv -> mongodb."""
    return scheme_of(url).split("+", 1)[0]


def url_option(url: str, name: str, default: str) -> str:
    return parse_qs(urlsplit(url).query).get(name, [default])[0]


def prefix_of(url: str) -> str:
    """The name that the tables or collections of one catalog start with (?prefix=NAME)."""
    return url_option(url, "prefix", DEFAULT_PREFIX)


def postgres_url(url: str) -> str:
    """pgvector://USER@HOST:PORT/DB?prefix=P -> postgresql://USER@HOST:PORT/DB (our options removed)."""
    return urlunsplit(urlsplit(url)._replace(scheme="postgresql", query=""))


def require_driver(module: str, extra: str, url: str) -> None:
    """Fail with the pip command to run when the driver for URL is not installed."""
    if importlib.util.find_spec(module) is None:
        raise StoreConfigError(f"{scheme_of(url)} stores need the {module!r} package: pip install 'prodmatch[{extra}]'")
