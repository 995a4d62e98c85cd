"""Retrieval-quality evaluation."""
