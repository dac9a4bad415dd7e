"""leo: a language-server sidecar for semantic code search and struggle hints."""

__version__ = "0.1.0"
