"""Benchmarks: models (images/s, ms/text), parity with the PyTorch reference, a load tester for a running service."""
