"""The vector index of a user's collection: vectors + metadata, and the builder that fills it from audio."""
