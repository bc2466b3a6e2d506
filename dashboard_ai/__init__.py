"""Wiring for the dashboard-ai Django project: settings, ASGI routing, URLs."""

__version__ = "0.1.0"
