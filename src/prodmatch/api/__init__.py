"""The HTTP API and web UI: FastAPI app factory, lifespan-built resources, one route module per resource."""
