"""Deployment exports of a compressed run (see asc_jax/export/__main__.py)."""
