"""The default backend: FAISS over a SQLite clip database (records, windows, keyword index)."""
