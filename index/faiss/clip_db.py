"""The SQLite half of the FAISS store: the source of truth for records, logits and vectors, and for each
clip's windows (span, logits, float16 vector) and waveform peaks.

WAL journal, synchronous=FULL: a transaction that committed survives a crash of the process or the machine.
Every write transaction that changes the vectors bumps ``generation``; a re-projection also bumps ``epoch``
(the vectors changed in place). The FAISS file is a cache of (epoch, generation) and is rebuilt or caught up
from here. A user's metadata edit changes no vector and bumps neither.
Its tables and their versions are index/faiss/schema.py.
"""

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from index.faiss import fts
from index.faiss.schema import (
    MIGRATIONS,
    N_RECORD_COLUMNS,
    RECORD_COLUMNS,
    SCHEMA,
    conditions,
    layers_json,
    record_of,
)
from index.sqlite_conn import ThreadConnections, integrity_of, refuse_newer, write_transaction
from index.store.metadata import Metadata, MetaLayers
from index.store.records import Chunk, ClipRecord, FileNow, NewClip, SearchFilter, Timeline, Windows
from retrieval.config import N_TAGS
from retrieval.errors import NewerFormat

WINDOW_CHUNK = 4096  # windows re-projected at a time


class ClipDB:
    """One connection per thread (WAL lets readers run beside a writer); writes in explicit transactions."""

    def __init__(self, path: Path):
        self.path = path
        self._connections = ThreadConnections(path, holds="the collection")
        try:
            self._migrate()
        except NewerFormat:
            self.close()
            raise

    def _migrate(self) -> None:
        """The schema made or brought up to this version's, in one transaction; a newer one refused before
        anything is written."""
        refuse_newer(self.path, len(MIGRATIONS))
        self.connection().executescript(SCHEMA)
        with self.transaction(bump=False) as con:
            for key in ("generation", "epoch"):
                con.execute("INSERT OR IGNORE INTO meta VALUES (?, 0)", (key,))
            version = int(con.execute("PRAGMA user_version").fetchone()[0])
            for step in dict.fromkeys(MIGRATIONS[version:]):  # a step listed twice (a rebuild) runs once
                step(con)
            con.execute(f"PRAGMA user_version = {max(version, len(MIGRATIONS))}")

    def connection(self) -> sqlite3.Connection:
        return self._connections.get()

    @contextmanager
    def transaction(self, *, bump: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (a full disk: StorageFull); a write bumps
        the generation."""
        with write_transaction(self.connection(), self.path) as con:
            yield con
            if bump:
                con.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one committed state, whatever other processes commit meanwhile."""
        con = self.connection()
        if con.in_transaction:  # already inside a write transaction: that is a snapshot
            yield
            return
        con.execute("BEGIN DEFERRED")
        try:
            yield
        finally:
            con.execute("COMMIT")

    def close(self) -> None:
        self._connections.close()

    # -- meta ---------------------------------------------------------------------------------------------
    def meta(self, key: str, default=None):
        row = self.connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def state(self) -> tuple[int, int]:
        """(epoch, generation) of the last committed write."""
        rows = dict(self.connection().execute(
            "SELECT key, value FROM meta WHERE key IN ('epoch', 'generation')").fetchall())
        return int(rows["epoch"]), int(rows["generation"])

    @staticmethod
    def set_meta(con: sqlite3.Connection, key: str, value) -> None:
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- clips --------------------------------------------------------------------------------------------
    @staticmethod
    def insert(con: sqlite3.Connection, clip: NewClip, *, vector: np.ndarray,
               logits: np.ndarray) -> int | None:
        """The new clip's id, or None when its content (sha256) is stored already (the transaction goes
        on)."""
        tags = json.dumps([[t.label, float(t.probability)] for t in clip.tags])
        try:
            cur = con.execute(
                "INSERT INTO clips (name, location, sha256, duration, sample_rate, added_at, stored_copy, "
                "tags, description, user_tags, fields, audio_sha256, meta_layers, logits, vector) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (clip.name, clip.location, clip.sha256, float(clip.duration), int(clip.sample_rate),
                 time.time(), int(clip.stored_copy), tags, clip.meta.description, clip.meta.tags_json(),
                 clip.meta.fields_json(), clip.audio_sha256, layers_json(clip.meta_layers),
                 logits.astype("<f4").tobytes(), vector.astype("<f4").tobytes()))
        except sqlite3.IntegrityError:
            if con.execute("SELECT 1 FROM clips WHERE sha256 = ?", (clip.sha256,)).fetchone() is None:
                raise
            return None
        id_ = int(cur.lastrowid or 0)
        fts.put(con, [(id_, clip)])
        return id_

    @staticmethod
    def insert_record(con: sqlite3.Connection, record: ClipRecord, *, vector: np.ndarray,
                      logits: np.ndarray) -> None:
        """A clip with its own id and time added (a restore); IntegrityError when its id or content is
        stored."""
        tags = json.dumps([[t.label, float(t.probability)] for t in record.tags])
        con.execute(
            "INSERT INTO clips (id, name, location, sha256, duration, sample_rate, added_at, stored_copy, "
            "tags, description, user_tags, fields, audio_sha256, meta_layers, logits, vector) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (int(record.id), record.name, record.location, record.sha256, float(record.duration),
             int(record.sample_rate), float(record.added_at), int(record.stored_copy), tags,
             record.meta.description, record.meta.tags_json(), record.meta.fields_json(), record.audio_sha256,
             layers_json(record.meta_layers), logits.astype("<f4").tobytes(), vector.astype("<f4").tobytes()))
        fts.put(con, [(int(record.id), record)])

    @staticmethod
    def set_metadata(con: sqlite3.Connection, id_: int, meta: Metadata, *,
                     meta_layers: MetaLayers | None = None, file: FileNow = FileNow()) -> ClipRecord | None:
        """Replace a clip's user metadata (and its meta_layers and what `file` gives, those given) and its
        keyword document; the new record, None without the clip."""
        row = con.execute(
            "UPDATE clips SET description = ?, user_tags = ?, fields = ?, sha256 = coalesce(?, sha256), "
            "location = coalesce(?, location), name = coalesce(?, name), "
            "audio_sha256 = coalesce(?, audio_sha256), meta_layers = coalesce(?, meta_layers) "
            f"WHERE id = ? RETURNING {RECORD_COLUMNS}",
            (meta.description, meta.tags_json(), meta.fields_json(), file.sha256, file.location, file.name,
             file.audio_sha256, layers_json(meta_layers), int(id_))).fetchone()
        if row is None:
            return None
        record = record_of(row)
        fts.put(con, [(record.id, record)])
        return record

    def next_id(self) -> int:
        """The id AUTOINCREMENT gives the next clip: above every id ever handed out."""
        con = self.connection()
        row = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'clips'").fetchone()
        top = con.execute("SELECT coalesce(max(id), 0) FROM clips").fetchone()[0]
        return max(int(row[0]) if row else 0, int(top)) + 1

    @staticmethod
    def reserve_ids(con: sqlite3.Connection, next_id: int) -> None:
        """AUTOINCREMENT hands out ids from `next_id` on (or from higher, where it would anyway)."""
        seq = int(next_id) - 1
        cur = con.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'clips'", (seq,))
        if cur.rowcount == 0:
            con.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('clips', ?)", (seq,))

    def export(self, *, dim: int, chunk: int = 1024) -> Iterator[Chunk]:
        """Every clip with its vector and logits in id order, `chunk` clips at a time, all of one committed
        state (a read transaction of this thread's connection stays open until the loop ends)."""
        with self.snapshot():
            con, after = self.connection(), 0
            n = N_RECORD_COLUMNS
            while rows := con.execute(f"SELECT {RECORD_COLUMNS}, vector, logits FROM clips WHERE id > ? "
                                      "ORDER BY id LIMIT ?", (after, chunk)).fetchall():
                vectors = np.frombuffer(b"".join(r[n] for r in rows), dtype="<f4").reshape(len(rows), dim)
                logits = np.frombuffer(b"".join(r[n + 1] for r in rows), dtype="<f4").reshape(len(rows),
                                                                                             N_TAGS)
                yield [record_of(r[:n]) for r in rows], vectors.astype(np.float32), logits.astype(np.float32)
                after = int(rows[-1][0])

    def integrity_check(self) -> list[str]:
        """SQLite's own check of the whole file: [] when it is sound, else what SQLite found."""
        return integrity_of(self.connection())

    def delete(self, con: sqlite3.Connection, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Delete the clips among `ids` that exist, with their windows and peaks; (the clip ids deleted, the
        window ids deleted)."""
        found = np.intersect1d(self.ids(), np.asarray(list(ids), dtype=np.int64))
        rows = [(int(i),) for i in found]
        windows = sorted(r[0] for r in self._by_id("SELECT id FROM windows WHERE clip_id IN ({})", found))
        for table, key in (("clips", "id"), ("windows", "clip_id"), ("waveforms", "clip_id")):
            con.executemany(f"DELETE FROM {table} WHERE {key} = ?", rows)
        fts.drop(con, found.tolist())
        return found, np.array(windows, dtype=np.int64)

    def replace_vectors(self, con: sqlite3.Connection, ids: np.ndarray, vectors: np.ndarray,
                        project: Callable[[np.ndarray], np.ndarray] | None) -> None:
        """New vectors for every clip and window (a re-projection; windows get `project(logits)`): the epoch
        moves, so FAISS caches are rebuilt."""
        rows = [(v.astype("<f4").tobytes(), int(i)) for i, v in zip(ids, vectors, strict=True)]
        con.executemany("UPDATE clips SET vector = ? WHERE id = ?", rows)
        after = 0
        while batch := con.execute("SELECT id, logits FROM windows WHERE id > ? ORDER BY id LIMIT ?",
                                   (after, WINDOW_CHUNK)).fetchall():
            if project is None:
                raise ValueError("the store holds windows: a re-projection must project them too")
            logits = np.stack([window_logits(r[1]) for r in batch])  # (n, 527) float32
            new = np.asarray(project(logits), dtype=np.float32)  # (n, D)
            if new.shape[0] != len(batch) or not np.isfinite(new).all():
                raise ValueError(f"projected window vectors must be ({len(batch)}, D) and finite")
            con.executemany("UPDATE windows SET vector = ? WHERE id = ?",
                            [(v.astype("<f2").tobytes(), int(r[0])) for v, r in zip(new, batch, strict=True)])
            after = int(batch[-1][0])
        con.execute("UPDATE meta SET value = value + 1 WHERE key = 'epoch'")

    # -- windows and peaks --------------------------------------------------------------------------------
    @staticmethod
    def insert_timeline(con: sqlite3.Connection, clip_id: int, t: Timeline) -> tuple[np.ndarray, np.ndarray]:
        """A clip's windows and peaks (a checked Timeline), replacing any it had; (the window ids replaced,
        the new window ids in window order)."""
        w = t.windows
        assert w.logits is not None  # check_timeline made sure
        gone = [r[0] for r in con.execute("SELECT id FROM windows WHERE clip_id = ?", (clip_id,))]
        con.execute("DELETE FROM windows WHERE clip_id = ?", (clip_id,))
        con.executemany(
            "INSERT INTO windows (clip_id, n, start_s, end_s, logits, vector) VALUES (?, ?, ?, ?, ?, ?)",
            [(clip_id, n, float(s), float(e), lg.astype("<f2").tobytes(), v.astype("<f2").tobytes())
             for n, (s, e, lg, v) in enumerate(zip(w.starts, w.ends, w.logits, w.vectors, strict=True))])
        con.execute("INSERT OR REPLACE INTO waveforms VALUES (?, ?)", (clip_id, t.peaks.tobytes()))
        new = [r[0] for r in con.execute("SELECT id FROM windows WHERE clip_id = ? ORDER BY n", (clip_id,))]
        return np.array(gone, dtype=np.int64), np.array(new, dtype=np.int64)

    def window_ids(self, flt: SearchFilter | None = None) -> np.ndarray:
        """(N,) int64 window ids, in id order, of the clips that pass the filter."""
        where, args = conditions(flt)
        sql = ("SELECT id FROM windows ORDER BY id" if not where else
               f"SELECT id FROM windows WHERE clip_id IN (SELECT id FROM clips WHERE {where}) ORDER BY id")
        rows = self.connection().execute(sql, args).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def window_vectors(self, ids: Sequence[int] | np.ndarray, dim: int, *,
                       missing_ok: bool = False) -> np.ndarray:
        """(len(ids), dim) float32 vectors of these window ids, in the order asked (FAISS fills); KeyError for
        one not stored, or with `missing_ok` a row of NaN (removed since it was found)."""
        found = dict(self._by_id("SELECT id, vector FROM windows WHERE id IN ({})", ids))
        out = np.empty((len(ids), dim), dtype=np.float32)
        for row, i in enumerate(ids):
            blob = found.get(int(i))
            if blob is None and not missing_ok:
                raise KeyError(f"no window with id {int(i)}")
            out[row] = np.nan if blob is None else np.frombuffer(blob, dtype="<f2")
        return out

    def window_rows(self, clip_ids: Sequence[int] | None = None) -> Iterator[tuple]:
        """(window id, clip id, n, start, end) of every window (or of these clips'), by clip id then n, read
        from the windows_place index alone (not the rows, which hold the vectors and logits)."""
        sql = "SELECT id, clip_id, n, start_s, end_s FROM windows INDEXED BY windows_place"
        if clip_ids is None:
            yield from self.connection().execute(sql + " ORDER BY clip_id, n")
            return
        for chunk in _chunks(sorted(int(i) for i in clip_ids)):
            marks = ",".join("?" * len(chunk))
            yield from self.connection().execute(f"{sql} WHERE clip_id IN ({marks}) ORDER BY clip_id, n",
                                                 chunk)

    def clips_of_windows(self, ids: Sequence[int] | np.ndarray) -> set[int]:
        """The clips these window ids belong to (of those that exist)."""
        return {r[0] for r in self._by_id("SELECT DISTINCT clip_id FROM windows WHERE id IN ({})", ids)}

    def window_places(self, ids: Sequence[int] | np.ndarray) -> dict[int, tuple[int, int, float, float]]:
        """window id -> (clip id, n, start, end) for the window ids that exist."""
        return {r[0]: r[1:] for r in self._by_id(
            "SELECT id, clip_id, n, start_s, end_s FROM windows WHERE id IN ({})", ids)}

    def windows_of(self, clip_ids: Sequence[int], dim: int, *, logits: bool = False) -> dict[int, Windows]:
        """clip id -> its windows (spans, float16 vectors; float32 logits with `logits`) for the clips among
        `clip_ids` that have any."""
        rows: dict[int, list[tuple]] = {}
        sql = f"SELECT clip_id, n, start_s, end_s, vector{', logits' if logits else ''} FROM windows "
        for r in self._by_id(sql + "WHERE clip_id IN ({})", clip_ids):
            rows.setdefault(r[0], []).append(r[1:])
        out = {}
        for clip_id, found in rows.items():
            found.sort(key=lambda r: r[0])
            vectors = np.frombuffer(b"".join(r[3] for r in found), dtype="<f2").reshape(len(found), dim)
            out[clip_id] = Windows(np.array([r[1] for r in found]), np.array([r[2] for r in found]),
                                   vectors.astype(np.float16),
                                   np.stack([window_logits(r[4]) for r in found]) if logits else None)
        return out

    def peaks_of(self, clip_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """clip id -> its (P,) uint8 waveform peaks, for the clips among `clip_ids` that have them."""
        return {r[0]: np.frombuffer(r[1], dtype=np.uint8).copy()
                for r in self._by_id("SELECT clip_id, peaks FROM waveforms WHERE clip_id IN ({})", clip_ids)}

    def without_windows(self) -> np.ndarray:
        rows = self.connection().execute(
            "SELECT id FROM clips WHERE NOT EXISTS (SELECT 1 FROM windows WHERE clip_id = clips.id) "
            "ORDER BY id").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def window_count(self) -> int:
        return int(self.connection().execute("SELECT count(*) FROM windows").fetchone()[0])

    def window_bytes(self) -> int:
        """Bytes of the windows' logits, vectors and spans and of the peaks, as stored (SQLite's own pages and
        indexes come on top)."""
        con = self.connection()
        windows = con.execute("SELECT coalesce(sum(length(logits) + length(vector) + 16), 0) "
                              "FROM windows").fetchone()[0]
        peaks = con.execute("SELECT coalesce(sum(length(peaks)), 0) FROM waveforms").fetchone()[0]
        return int(windows) + int(peaks)

    # -- rows of no clip, and keyword rows gone stale (what `retrieval check` finds and repairs) ----------
    _ORPHANS = {"windows": "SELECT DISTINCT clip_id FROM windows WHERE clip_id NOT IN (SELECT id FROM clips)",
                "waveform peaks": "SELECT clip_id FROM waveforms WHERE clip_id NOT IN (SELECT id FROM clips)",
                "keyword rows": f"SELECT rowid FROM {fts.TABLE} WHERE rowid NOT IN (SELECT id FROM clips)"}

    def orphans(self) -> dict[str, list[int]]:
        """The clips that rows of windows, of waveform peaks and of the keyword index belong to while no such
        clip is stored ("windows", "waveform peaks", "keyword rows" -> those clip ids): what another program's
        writes leave (the store writes each with its clip, in one transaction)."""
        con = self.connection()
        return {what: [int(row[0]) for row in con.execute(sql)] for what, sql in self._ORPHANS.items()}

    def keyword_documents(self, ids: Sequence[int] | np.ndarray) -> dict[int, str]:
        """clip id -> the words the keyword index holds for it, for the clips among `ids` that have a row."""
        return dict(self._by_id(f"SELECT rowid, words FROM {fts.TABLE} WHERE rowid IN ({{}})", ids))

    @staticmethod
    def drop_orphans(con: sqlite3.Connection, orphans: dict[str, list[int]]) -> None:
        """Delete the rows of no clip that `orphans` found (its keys), in `con`'s transaction."""
        con.executemany("DELETE FROM windows WHERE clip_id = ?", [(i,) for i in orphans.get("windows", [])])
        con.executemany("DELETE FROM waveforms WHERE clip_id = ?",
                        [(i,) for i in orphans.get("waveform peaks", [])])
        fts.drop(con, orphans.get("keyword rows", []))

    @staticmethod
    def rewrite_words(con: sqlite3.Connection, records: Sequence[ClipRecord]) -> None:
        """The keyword index's rows of the clips among `records` still stored, written again from them."""
        fts.put(con, [(r.id, r) for r in records if ClipDB.exists(con, r.id)])

    def _by_id(self, sql: str, ids: Sequence[int] | np.ndarray) -> Iterator[tuple]:
        """The rows of `sql` (its IN list as `{}`) for `ids`, asked in chunks."""
        for chunk in _chunks([int(i) for i in ids]):
            yield from self.connection().execute(sql.format(",".join("?" * len(chunk))), chunk)

    def total_duration(self) -> float:
        return float(self.connection().execute("SELECT coalesce(sum(duration), 0) FROM clips").fetchone()[0])

    @staticmethod
    def exists(con: sqlite3.Connection, id_: int) -> bool:
        """Whether the clip is stored, as `con`'s transaction sees it."""
        return con.execute("SELECT 1 FROM clips WHERE id = ?", (int(id_),)).fetchone() is not None

    def get(self, id_: int) -> ClipRecord | None:
        row = self.connection().execute(f"SELECT {RECORD_COLUMNS} FROM clips WHERE id = ?", (id_,)).fetchone()
        return None if row is None else record_of(row)

    def get_by_sha256(self, sha256: str) -> ClipRecord | None:
        row = self.connection().execute(
            f"SELECT {RECORD_COLUMNS} FROM clips WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else record_of(row)

    def at_location(self, location: str) -> list[ClipRecord]:
        return self._where("location = ?", location)

    def with_audio(self, audio_sha256: str) -> list[ClipRecord]:
        return self._where("audio_sha256 = ?", audio_sha256)

    def lasting(self, seconds: float, tolerance: float) -> list[ClipRecord]:
        return self._where("duration BETWEEN ? AND ?", float(seconds) - tolerance, float(seconds) + tolerance)

    def _where(self, condition: str, *values) -> list[ClipRecord]:
        """The clips meeting `condition` (SQL over an indexed column, written here only), by id."""
        rows = self.connection().execute(
            f"SELECT {RECORD_COLUMNS} FROM clips WHERE {condition} ORDER BY id", values).fetchall()
        return [record_of(r) for r in rows]

    def records(self, ids: Sequence[int]) -> dict[int, ClipRecord]:
        out = {}
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            for row in self.connection().execute(
                    f"SELECT {RECORD_COLUMNS} FROM clips WHERE id IN ({marks})", chunk):
                out[row[0]] = record_of(row)
        return out

    def page(self, *, offset: int, limit: int) -> list[ClipRecord]:
        rows = self.connection().execute(
            f"SELECT {RECORD_COLUMNS} FROM clips ORDER BY id LIMIT ? OFFSET ?", (limit, offset)).fetchall()
        return [record_of(r) for r in rows]

    def count(self) -> int:
        return int(self.connection().execute("SELECT count(*) FROM clips").fetchone()[0])

    def ids(self, flt: SearchFilter | None = None) -> np.ndarray:
        """(N,) int64 ids, in id order, of the clips that pass the filter."""
        where, args = conditions(flt)
        rows = self.connection().execute(f"SELECT id FROM clips {'WHERE ' + where if where else ''} "
                                         "ORDER BY id", args).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def keyword_search(self, query: str, k: int, flt: SearchFilter | None = None) -> list[tuple[ClipRecord,
                                                                                                  float]]:
        """(record, BM25 score) of the k best keyword matches among the clips that pass the filter (the
        query's prefixes expanded against the same committed state that is searched)."""
        where, args = conditions(flt)
        with self.snapshot():
            rows = fts.match(self.connection(), query, k, where=where, args=args,
                             columns=", ".join(f"clips.{c}" for c in RECORD_COLUMNS.split(", ")))
        return [(record_of(r[:-1]), float(r[-1])) for r in rows]

    def blobs(self, ids: Sequence[int] | np.ndarray, column: str, width: int, *,
              missing_ok: bool = False) -> np.ndarray:
        """(len(ids), width) float32 rows of the `vector` or `logits` column, in the order asked; KeyError for
        an id not stored, or with `missing_ok` a row of NaN."""
        if column not in ("vector", "logits"):
            raise ValueError(column)
        ids = [int(i) for i in ids]
        found: dict[int, bytes] = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            found.update(self.connection().execute(
                f"SELECT id, {column} FROM clips WHERE id IN ({marks})", chunk).fetchall())
        missing = [i for i in ids if i not in found]
        if missing and not missing_ok:
            raise KeyError(f"no clips with ids {missing[:10]}")
        out = np.empty((len(ids), width), dtype=np.float32)
        for row, i in enumerate(ids):
            out[row] = np.frombuffer(found[i], dtype="<f4") if i in found else np.nan
        return out

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        return self.blobs(ids, "logits", N_TAGS)  # (N, 527)


def window_logits(blob: bytes) -> np.ndarray:
    """(527,) float32 logits of a window row: float16 as written now, float32 in rows written before."""
    return np.frombuffer(blob, dtype="<f2" if len(blob) == 2 * N_TAGS else "<f4").astype(np.float32)


def _chunks(ids: list, size: int = 900) -> Iterator[list]:
    """SQLite caps bound parameters per statement; ask in chunks."""
    for start in range(0, len(ids), size):
        yield ids[start:start + size]
