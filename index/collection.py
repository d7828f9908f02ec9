"""What the service and the CLI use: a store plus the model, with the verbs a user thinks in.

Contract (the index issue implements it; the service only calls these):

    Collection.open(settings, retriever) -> Collection
    .add_bytes(data: bytes, name: str) -> tuple[ClipRecord, bool]        # (record, created); dedup by sha256
    .add_path(path: Path) -> tuple[ClipRecord, bool]
    .search_text(query: str, k: int, flt: SearchFilter | None = None) -> list[Hit]
    .search_vector(xq: np.ndarray, k: int, flt=None) -> list[Hit]
    .search_audio(data: bytes, k: int, flt=None, name="query") -> list[Hit]
    .get(id) -> ClipRecord | None      .list(offset, limit) -> list[ClipRecord]     .count() -> int
    .remove(ids) -> int                 (also deletes stored upload copies)
    .audio_path(record) -> Path         (where the audio can be read for streaming)
    .reproject(checkpoint_path) -> int  (new head, stored logits, no PaSST)
    .close()

Errors: retrieval.errors.AudioDecodeError (and AudioTooLong) for bad audio, CheckpointMismatch for a
store made with another model.
"""
