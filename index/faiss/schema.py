"""The clip database's tables and their versions, and how a row and a SearchFilter read in its SQL.

Versions (``PRAGMA user_version``): 0 is the schema below; each step of MIGRATIONS moves a file on by one,
in the same transaction as the new version number, so a store of any earlier version opens (by any number
of processes at once) and is brought up to date in place. 1: the user's metadata columns (description,
user_tags, fields) and the keyword index (index/faiss/fts.py), filled from the clips already stored.
2: the keyword index rebuilt from the stored records with the words' stems (index/store/words.py), and its
vocabulary (fts5vocab), which prefix queries are expanded against. 3: an index of the windows' places
(clip, n, span), so the store's in-memory map of them is read without the rows' vectors and logits; windows
written from then on keep their logits as float16 (read back only by a re-projection; rows written before
keep float32, told apart by their length). 4: the keyword index again, its documents now holding the
words of the fields' values. 5: an index of the clips' locations (the clips of a file indexed where it lies).
6: each clip's audio fingerprint (``audio_sha256``, null for clips stored before: their files are tagged
again when they change), indexed (the clips of a file moved and retagged are found by it). 7: what each
clip's file said when last read and what the user set, kept apart (``meta_layers``, JSON
``{"file": ..., "own": ...}`` of descriptions, tags and fields; null for clips stored before), so that a file
read again gives its clip what it says now under what the user set. 8: the keyword index again, its
documents now holding each word without its accents too (``café`` found by ``cafe``). 9: the keyword index
again, each word whole with its combining marks (Hindi's vowel signs cut words) and marks that make another
letter (kana's voicing marks) no longer taken off. 10: the keyword index again, its tokenizer taking
combining marks as word characters (fts.TOKENIZER). 11: each clip's user text as it is stored now
(index/store/names.py: composed, trimmed, line breaks LF, no control characters), so that a filter, which
takes its tags and values so, finds the clips whose text was stored otherwise before.
"""

import json
import logging
import sqlite3
from contextlib import closing
from pathlib import Path

from index.faiss import fts
from index.sqlite_conn import read_only
from index.store.metadata import Metadata, MetaLayers
from index.store.names import clip_name
from index.store.records import ClipRecord, SearchFilter, Tag

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value NOT NULL);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so a FAISS id always means one clip
    name TEXT NOT NULL,
    location TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    duration REAL NOT NULL,
    sample_rate INTEGER NOT NULL,
    added_at REAL NOT NULL,
    stored_copy INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL,                    -- JSON [[label, probability], ...], most probable first
    logits BLOB NOT NULL,                  -- (527,) float32
    vector BLOB NOT NULL                   -- (D,) float32
);
CREATE INDEX IF NOT EXISTS clips_duration ON clips (duration);
CREATE TABLE IF NOT EXISTS windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so a FAISS window id always means one window
    clip_id INTEGER NOT NULL,              -- written and deleted with its clip, in the same transaction
    n INTEGER NOT NULL,                    -- the window's place in the clip, 0 first
    start_s REAL NOT NULL,                 -- seconds, in the clip's own time
    end_s REAL NOT NULL,
    logits BLOB NOT NULL,                  -- (527,) float16 (float32 in rows written before version 3)
    vector BLOB NOT NULL,                  -- (D,) float16
    UNIQUE (clip_id, n)
);
CREATE TABLE IF NOT EXISTS waveforms (
    clip_id INTEGER PRIMARY KEY,
    peaks BLOB NOT NULL                    -- (P,) uint8
);
"""



def _add_metadata(con: sqlite3.Connection) -> None:
    """Version 1: the user's metadata, and the keyword index over every clip stored."""
    con.execute("ALTER TABLE clips ADD COLUMN description TEXT NOT NULL DEFAULT ''")
    con.execute("ALTER TABLE clips ADD COLUMN user_tags TEXT NOT NULL DEFAULT '[]'")  # JSON list, normalised
    con.execute("ALTER TABLE clips ADD COLUMN fields TEXT NOT NULL DEFAULT '{}'")  # JSON object of strings
    _fill_keywords(con)


def _rebuild_keywords(con: sqlite3.Connection) -> None:
    """Versions 2 (the words' stems, and the vocabulary), 4 (the fields' values), 8 and 9 (the words
    without their accents), 10 (words whole with their combining marks: fts.TOKENIZER): the keyword index made
    again from the stored records, as index/store/words.py makes documents now."""
    con.execute(f"DROP TABLE IF EXISTS {fts.VOCAB}")
    con.execute(f"DROP TABLE IF EXISTS {fts.TABLE}")
    _fill_keywords(con)


def _fill_keywords(con: sqlite3.Connection) -> None:
    """The keyword index (made where there is none) filled from every clip stored, 1000 at a time."""
    fts.create(con)
    after = 0
    while rows := con.execute(f"SELECT {KEYWORD_COLUMNS} FROM clips WHERE id > ? ORDER BY id LIMIT 1000",
                              (after,)).fetchall():
        fts.put(con, ((r[0], record_of(r)) for r in rows))
        after = rows[-1][0]


def _index_window_places(con: sqlite3.Connection) -> None:
    """Version 3: the windows' places, readable without their rows (index/faiss/window_places.py)."""
    n = int(con.execute("SELECT count(*) FROM windows").fetchone()[0])
    if n:  # every row is read once: on a large store, a while
        log.info("indexing the places of the %d stored windows (once, for this version of the store)", n)
    con.execute(PLACE_INDEX)


PLACE_INDEX = "CREATE INDEX IF NOT EXISTS windows_place ON windows (clip_id, n, start_s, end_s)"


def _index_locations(con: sqlite3.Connection) -> None:
    """Version 5: the clips by location, so a file indexed again is found where it lies."""
    con.execute("CREATE INDEX IF NOT EXISTS clips_location ON clips (location)")


def _add_audio_sha256(con: sqlite3.Connection) -> None:
    """Version 6: the clips' audio fingerprints (unknown for the clips stored before), indexed."""
    if "audio_sha256" not in {row[1] for row in con.execute("PRAGMA table_info(clips)")}:
        con.execute("ALTER TABLE clips ADD COLUMN audio_sha256 TEXT")
    con.execute("CREATE INDEX IF NOT EXISTS clips_audio ON clips (audio_sha256)")


def _add_meta_layers(con: sqlite3.Connection) -> None:
    """Version 7: what the clips' files said, kept apart (unknown for the clips stored before)."""
    if "meta_layers" not in {row[1] for row in con.execute("PRAGMA table_info(clips)")}:
        con.execute("ALTER TABLE clips ADD COLUMN meta_layers TEXT")


def _store_user_text(con: sqlite3.Connection) -> None:
    """Version 11: each clip's name (clip_name) and its description, tags and field values, and its
    metadata's layers, written again as they are stored now (Metadata.from_stored: composed, trimmed, line
    breaks LF, without control characters), a page of clips at a time, only those that change, and their
    keyword documents with them: a filter compares the stored JSON with values taken so (a tag stored
    decomposed, or a value with a space at its end, matched no filter), and a name kept a line break or a
    control of text's direction that the same file indexed now would not."""
    after = 0
    while rows := con.execute("SELECT id, name, description, user_tags, fields, meta_layers FROM clips "
                              "WHERE id > ? ORDER BY id LIMIT 500", (after,)).fetchall():  # 500: SQLite's
        changed = []  # parameters in one statement were at most 999 before 3.32
        for id_, name, description, user_tags, fields, layers in rows:
            meta = Metadata.from_json(description, user_tags, fields)
            stored = (clip_name(name), meta.description, meta.tags_json(), meta.fields_json(),
                      None if layers is None else MetaLayers.from_json_text(layers).to_json())
            if stored != (name, description, user_tags, fields, layers):
                con.execute("UPDATE clips SET name = ?, description = ?, user_tags = ?, fields = ?, "
                            "meta_layers = ? WHERE id = ?", (*stored, id_))
                changed.append(id_)
        if changed:
            marks = ",".join("?" * len(changed))
            fts.put(con, ((r[0], record_of(r)) for r in con.execute(
                f"SELECT {KEYWORD_COLUMNS} FROM clips WHERE id IN ({marks})", changed).fetchall()))
        after = rows[-1][0]


# MIGRATIONS[v] takes a file from version v to v + 1
MIGRATIONS = (_add_metadata, _rebuild_keywords, _index_window_places, _rebuild_keywords, _index_locations,
              _add_audio_sha256, _add_meta_layers, _rebuild_keywords, _rebuild_keywords, _rebuild_keywords,
              _store_user_text)
# a keyword document's columns: those every version from 1 on has (a migration's rebuild reads them)
KEYWORD_COLUMNS = ("id, name, location, sha256, duration, sample_rate, added_at, stored_copy, tags, "
                   "description, user_tags, fields")
RECORD_COLUMNS = f"{KEYWORD_COLUMNS}, audio_sha256, meta_layers"
N_RECORD_COLUMNS = 14
TAG_MATCH = ("EXISTS (SELECT 1 FROM json_each(clips.tags) AS t "
             "WHERE lower(json_extract(t.value, '$[0]')) = lower(?))")
USER_TAG_MATCH = "EXISTS (SELECT 1 FROM json_each(clips.user_tags) AS u WHERE u.value IN ({marks}))"
FIELD_MATCH = "json_extract(clips.fields, ?) = ?"


def record_of(row: tuple) -> ClipRecord:
    """A row of RECORD_COLUMNS (or of KEYWORD_COLUMNS: no fingerprint, no file metadata) as a record."""
    id_, name, location, sha, duration, rate, added_at, stored_copy, tags, description, user_tags, fields, \
        *rest = row
    audio, meta_layers = (*rest, None, None)[:2]
    # RETURNING gives a REAL column's whole value as an integer (3, not 3.0): floats, as SELECT gives them
    return ClipRecord(name=name, location=location, sha256=sha, duration=float(duration), sample_rate=rate,
                      tags=tuple(Tag(label, p) for label, p in json.loads(tags)),
                      stored_copy=bool(stored_copy), meta=Metadata.from_json(description, user_tags, fields),
                      audio_sha256=audio, meta_layers=layers_or_none(meta_layers), id=id_,
                      added_at=float(added_at))


def layers_json(layers: MetaLayers | None) -> str | None:
    """A clip's metadata layers as stored (MetaLayers.to_json), None when not known."""
    return None if layers is None else layers.to_json()


def layers_or_none(stored: str | None) -> MetaLayers | None:
    return None if stored is None else MetaLayers.from_json_text(stored)


def conditions(flt: SearchFilter | None) -> tuple[str, list]:
    """SQL over `clips` that the filter's clips satisfy ('' for every clip), and its arguments."""
    if flt is None or flt.empty:
        return "", []
    terms: list[str] = []
    args: list[object] = []
    if flt.min_duration is not None:
        terms.append("duration >= ?")
        args.append(float(flt.min_duration))
    if flt.max_duration is not None:
        terms.append("duration <= ?")
        args.append(float(flt.max_duration))
    if flt.tag is not None:
        terms.append(TAG_MATCH)
        args.append(flt.tag)
    if flt.tags_any:
        terms.append(USER_TAG_MATCH.format(marks=",".join("?" * len(flt.tags_any))))
        args.extend(flt.tags_any)
    for tag in flt.tags_all:
        terms.append(USER_TAG_MATCH.format(marks="?"))
        args.append(tag)
    if flt.tags_none:
        terms.append("NOT " + USER_TAG_MATCH.format(marks=",".join("?" * len(flt.tags_none))))
        args.extend(flt.tags_none)
    for key, value in flt.fields:
        terms.append(FIELD_MATCH)
        args.extend([f'$."{key}"', value])
    return " AND ".join(terms), args


def stored_clips(path: Path) -> int:
    """How many clips the clip database at `path` holds (0 where there is none), without writing."""
    if not Path(path).is_file():
        return 0
    with closing(read_only(path)) as con:
        try:
            return int(con.execute("SELECT count(*) FROM clips").fetchone()[0])
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return 0
            raise
