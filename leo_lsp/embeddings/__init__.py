"""Embedding providers: the embedded local model by default, any OpenAI-compatible server by choice."""
