"""NVIDIA Triton Inference Server: model repositories (ONNX Runtime, Python and TensorRT backends), and client
ModelSessions for the towers they serve. Importing this package needs nothing beyond prodmatch's core;
`tritonclient` (the `triton` extra) is imported by the modules that use it."""
