"""Fixtures of the metric series tests: a generated record store for real export runs."""

from tests.export.conftest import records  # noqa: F401 (a fixture)
