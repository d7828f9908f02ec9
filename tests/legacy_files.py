"""Files in the formats the code wrote before ModelSpec existed, written here by hand (no project code), so
the tests can hold the new code to reading them: a FAISS store whose SQLite meta holds a ``fingerprint``, a
Qdrant collection whose metadata does, a head checkpoint whose metadata holds ``config`` (the old
HeadConfig), a feature sidecar with the model keys at its top level, a Ray shard manifest and a partial
feature file naming their ``tagger``."""

import json
import sqlite3
import time
from pathlib import Path

import numpy as np

PASST_ARCH = "passt_s_swa_p16_128_ap476"
WINDOWING = {"window_s": 10.0, "hop_s": 2.5, "sample_rate": 32000}
TAGGER = {"passt_arch": PASST_ARCH, **WINDOWING}  # what PasstTagger.describe() said


def fingerprint(*, head: str, text_model: str, dim: int, text_model_revision: str | None = None,
                **tagger) -> dict:
    """What Retriever.fingerprint said: the head (checkpoint sha256 or "zero-shot"), the text model and the
    tagger; no PaSST weights and no lam."""
    return {"head": head, "text_model": text_model, "text_model_revision": text_model_revision, "dim": dim,
            **TAGGER, **tagger}


# -- the FAISS store: SQLite (the source of truth) and its FAISS cache file ------------------------------
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value NOT NULL);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    location TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    duration REAL NOT NULL,
    sample_rate INTEGER NOT NULL,
    added_at REAL NOT NULL,
    stored_copy INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL,
    logits BLOB NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS clips_duration ON clips (duration);
"""


def write_old_faiss_store(data_dir: Path, fp: dict, clips: list, vectors: np.ndarray, logits: np.ndarray, *,
                          with_cache_file: bool = True) -> list[int]:
    """An `index.sqlite` (+ `faiss/flat-e0-gN.faiss`) as the previous FaissStore left them; returns the ids.
    `clips` are index.store.records.NewClip (only their fields are used)."""
    import faiss

    data_dir = Path(data_dir)
    (data_dir / "faiss").mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(data_dir / "index.sqlite", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript(OLD_SCHEMA)
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO meta VALUES ('epoch', 0)")
    con.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (json.dumps(fp, sort_keys=True),))
    ids = []
    for c, v, lg in zip(clips, vectors, logits, strict=True):
        tags = json.dumps([[t.label, float(t.probability)] for t in c.tags])
        cur = con.execute(
            "INSERT INTO clips (name, location, sha256, duration, sample_rate, added_at, stored_copy, tags, "
            "logits, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (c.name, c.location, c.sha256, float(c.duration), int(c.sample_rate), time.time(),
             int(c.stored_copy), tags, np.asarray(lg, "<f4").tobytes(), np.asarray(v, "<f4").tobytes()))
        ids.append(int(cur.lastrowid))
    generation = len(ids)  # one write transaction per add
    con.execute("INSERT INTO meta VALUES ('generation', ?)", (generation,))
    con.execute("COMMIT")
    con.close()
    if with_cache_file:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(int(fp["dim"])))
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
        faiss.write_index(index, str(data_dir / "faiss" / f"flat-e0-g{generation}.faiss"))
    return ids


# -- the Qdrant store: alias -> <alias>-g0, the fingerprint in the collection's metadata ------------------
def write_old_qdrant_collection(data_dir: Path, fp: dict, clips: list, vectors: np.ndarray,
                                logits: np.ndarray, *, alias: str = "clips") -> list[int]:
    """An embedded Qdrant collection as the previous QdrantStore made it; returns the ids."""
    from qdrant_client import QdrantClient
    from qdrant_client import models as qm

    path = Path(data_dir) / "qdrant"
    path.mkdir(parents=True, exist_ok=True)
    client = QdrantClient(path=str(path))
    try:
        name = f"{alias}-g0"
        client.create_collection(name, vectors_config={
            "audio": qm.VectorParams(size=int(fp["dim"]), distance=qm.Distance.DOT),
            "logits": qm.VectorParams(size=527, distance=qm.Distance.DOT, on_disk=True,
                                      hnsw_config=qm.HnswConfigDiff(m=0))},
            metadata={"fingerprint": fp, "next_id": len(clips) + 1})
        client.update_collection_aliases([qm.CreateAliasOperation(
            create_alias=qm.CreateAlias(collection_name=name, alias_name=alias))])
        points = []
        for i, (c, v, lg) in enumerate(zip(clips, vectors, logits, strict=True), start=1):
            payload = {"id": i, "name": c.name, "location": c.location, "sha256": c.sha256,
                       "duration": float(c.duration), "sample_rate": int(c.sample_rate),
                       "stored_copy": bool(c.stored_copy), "added_at": time.time(),
                       "tags": [{"label": t.label, "probability": float(t.probability)} for t in c.tags],
                       "tag_labels": [t.label.lower() for t in c.tags]}
            vector = {"audio": np.asarray(v).tolist(), "logits": np.asarray(lg).tolist()}
            points.append(qm.PointStruct(id=i, payload=payload, vector=vector))
        client.upsert(name, points, wait=True)
    finally:
        client.close()
    return list(range(1, len(clips) + 1))


# -- the head checkpoint: safetensors with metadata format / config / metrics ----------------------------
def head_config(*, text_model: str, dim: int, lam: float, text_model_revision: str | None = None,
                passt_arch: str = PASST_ARCH, windowing: dict | None = None) -> dict:
    """asdict(HeadConfig(...)) as the previous checkpoint.py wrote it."""
    return {"text_model": text_model, "text_model_revision": text_model_revision, "dim": dim, "lam": lam,
            "n_tags": 527, "passt_arch": passt_arch, "windowing": dict(windowing or WINDOWING)}


def write_old_checkpoint(path: Path, config: dict, *, tag_embeddings: np.ndarray, seed: int = 0,
                         metrics: dict | None = None) -> dict[str, np.ndarray]:
    """The head's state dict (random weights, the given tag embeddings) and the old metadata; returns the
    tensors written."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    d = int(config["dim"])
    tensors = {"audio_norm.weight": (1 + 0.1 * rng.standard_normal(527)).astype(np.float32),
               "audio_norm.bias": (0.1 * rng.standard_normal(527)).astype(np.float32),
               "audio_proj.weight": (rng.standard_normal((d, 527)) / np.sqrt(527)).astype(np.float32),
               "audio_proj.bias": (0.01 * rng.standard_normal(d)).astype(np.float32),
               "tag_embeddings": np.ascontiguousarray(tag_embeddings, dtype=np.float32)}
    meta = {"format": "retrieval-head/1", "config": json.dumps(config),
            "metrics": json.dumps(metrics or {"mAP@10": 0.25, "epoch": 3})}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return tensors


# -- the feature file: four tensors and a sidecar with the model keys at its top level -------------------
def write_old_features(path: Path, *, logits: np.ndarray, text: np.ndarray, caption_clip: np.ndarray,
                       tag_text: np.ndarray, text_model: str, split: str = "validation",
                       text_model_revision: str | None = None, passt_arch: str = PASST_ARCH,
                       windowing: dict | None = None) -> dict:
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"logits": logits.astype(np.float32), "text": text.astype(np.float32),
               "caption_clip": caption_clip.astype(np.int64), "tag_text": tag_text.astype(np.float32)},
              str(path))
    meta = {"format": "retrieval-features/1", "dataset": "planted", "split": split,
            "clips": [f"clip_{i:04d}.wav" for i in range(len(logits))],
            "captions": [f"caption {m}" for m in range(len(text))],
            "text_model": text_model, "text_model_revision": text_model_revision, "dim": int(text.shape[1]),
            "passt_arch": passt_arch, "windowing": dict(windowing or WINDOWING)}
    path.with_suffix(".json").write_text(json.dumps(meta, ensure_ascii=False, indent=1))
    return meta


def write_old_partial(path: Path, done: dict[str, np.ndarray], *, tagger: dict | None = None) -> None:
    """An interrupted feature extraction's `<out>.partial.npz`, naming the tagger as describe() did."""
    logits = np.stack(list(done.values())) if done else np.zeros((0, 527), np.float32)
    with open(path, "wb") as f:
        np.savez(f, names=np.array(list(done), dtype=str), logits=logits, tagger=json.dumps(tagger or TAGGER))


# -- Ray shards: Parquet files and manifest.json naming the tagger ---------------------------------------
def write_old_shard_folder(folder: Path, rows: list[dict], *, tagger: dict | None = None) -> dict:
    """One shard with `rows` ({path, name, sha256, duration, sample_rate, logits (527,), error}) and the
    previous manifest; returns the manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    columns = {k: pa.array([r[k] for r in rows]) for k in ("path", "name", "sha256", "duration",
                                                            "sample_rate", "error")}
    flat = np.concatenate([np.asarray(r["logits"], np.float32) for r in rows])
    columns["logits"] = pa.FixedSizeListArray.from_arrays(pa.array(flat), 527)
    pq.write_table(pa.table(columns), folder / "shard-000.parquet")
    manifest = {"tagger": dict(tagger or TAGGER), "passt_weights": "random", "shards": ["shard-000.parquet"]}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
