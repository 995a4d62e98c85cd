"""The use cases (match, ingest, upsert, delete, calibrate): the one implementation that the CLI and the HTTP API
both call, so both decide, log and write the same way. Evaluation and benchmarks are clients of this layer."""
