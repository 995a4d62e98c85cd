"""Stores: product metadata (MetadataStore) and vectors (VectorIndex), behind protocols."""
