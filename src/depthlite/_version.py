"""The package version: one place, read by pyproject and the HTTP User-Agent."""

__version__ = "0.1.0"
