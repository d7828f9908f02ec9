"""The store contract and what every backend shares: records, checks, metadata, words."""
