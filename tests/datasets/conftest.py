"""Fixtures of the datasets tests: small FLIR datasets in both layouts (module-scoped)."""

from support.flir import synthetic_v1, synthetic_v2  # noqa: F401
