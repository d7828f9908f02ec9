"""The Qdrant backend: a clips collection and a windows collection behind aliases."""
