"""The error types prodmatch raises on purpose; anything else is a bug."""


class ProdmatchError(Exception):
    """Base class: a problem the user can act on, with a message that says how."""


class InvalidImageError(ProdmatchError, ValueError):
    """An image could not be decoded or is unusable (corrupt, truncated, too small, too many pixels)."""


class InvalidTextError(ProdmatchError, ValueError):
    """A text query or product text is unusable (empty after normalisation)."""


class ModelUnavailableError(ProdmatchError):
    """A model's weights or runtime are not available on this machine; the message names the remedy."""


class ModelServerUnavailableError(ModelUnavailableError):
    """A remote model server (Triton) cannot be reached now, after retries; the request may be retried later."""


class ModelMismatchError(ProdmatchError):
    """A data dir was built with one model bundle and is being used with another."""


class CatalogError(ProdmatchError):
    """A catalog file cannot be read at all (missing, unknown format, no id column)."""


class FilterError(ProdmatchError, ValueError):
    """A match filter is malformed or names an attribute the catalog does not have."""


class InvalidQueryError(ProdmatchError, ValueError):
    """A match request is out of range (top_k, weights) or otherwise unusable."""


class NotFoundError(ProdmatchError, KeyError):
    """A product id or data dir does not exist."""


class StoreUnavailableError(ProdmatchError):
    """A database the catalog lives in cannot be reached now (down, restarting, refusing connections)."""


class StoreConfigError(ProdmatchError):
    """A store URL is malformed, names an unknown scheme, or needs a driver that is not installed."""


class AuthenticationError(ProdmatchError):
    """A request without a valid API key (missing, unknown or revoked): 401."""


class PermissionDeniedError(ProdmatchError):
    """A valid API key without the scope the request needs: 403."""


class RateLimitedError(ProdmatchError):
    """Too many requests from one key or address: 429, with the seconds to wait."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelTimeoutError(ModelServerUnavailableError):
    """The model did not answer within the time limit; the request may be retried."""


class UnknownProductError(ProdmatchError, ValueError):
    """A request names a product that does not exist where one is required (feedback): 422."""
