"""awe's AI step kinds: llm, embed, ingest, retrieve and scrub (registered as entry points)."""
