"""Embedding providers: the embedded local model, or any OpenAI-compatible server."""
