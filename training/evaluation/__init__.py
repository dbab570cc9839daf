"""Scoring audio embeddings with the protocol of the COALA paper (sec. 3.2): data sets, extractors,
cache, protocol (cross-validation), report, and the zero-shot and paired reports; see
training/__init__.py for the map."""
