"""Catalogs: reading files, mapping columns to products, ingesting into the stores."""
