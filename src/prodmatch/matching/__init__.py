"""Matching: query embedding, filtered search, score fusion, product join."""
