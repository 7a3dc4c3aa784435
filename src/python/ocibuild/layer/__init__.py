"""Layers: what goes in (entries), how it is written (tar), compressed and hashed."""
