"""Benchmarks that drive a running service."""
