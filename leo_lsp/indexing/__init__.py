"""Indexing: crawl a workspace, detect languages, chunk documents, feed the pipeline."""
