"""awe's AI layer: LLM providers, embeddings, vector search, knowledge base, PII scrubbing."""
