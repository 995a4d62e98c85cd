"""Embedding models: registry, bundles, runtimes (ONNX Runtime, PyTorch reference), export, benchmark."""
