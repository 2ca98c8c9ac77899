"""The knowledge base: checking, reading and chunking documents, then ingesting them."""
