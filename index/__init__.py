"""A user's collection: the store contract and its backends, the Collection the service and the CLI use,
getting clips in, and operations on a whole store.

    store/     the contract every backend implements, and what all of them share (records, checks, words)
    faiss/     the default backend: FAISS over a SQLite clip database
    qdrant/    the Qdrant backend
    ingest/    the upload queue and its worker, folders, Ray shards, the bulk loader, backfills
    backups/   backup, restore, the archive format, consistency checks
    collection.py  a store plus the model, with the verbs a user thinks in
    stores.py      which backend opens a store;  layout.py  the data directory's files
"""
