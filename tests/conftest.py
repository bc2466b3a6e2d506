"""Shared test configuration."""

pytest_plugins = ["tests.support.fixtures"]
