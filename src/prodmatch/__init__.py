"""prodmatch: match a product photo or description against a catalog."""

__version__ = "0.1.0"
