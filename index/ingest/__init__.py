"""Getting clips in: the upload queue and its worker, folders, Ray shards, the bulk loader, backfills."""
