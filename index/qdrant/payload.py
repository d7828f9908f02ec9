"""A clip as a Qdrant point's payload and back, and a SearchFilter as a Qdrant filter: the one place the
Qdrant backend's payload fields are named."""

from __future__ import annotations

import functools
import unicodedata

from qdrant_client import models as qm

from index.qdrant import layout
from index.store import words as keyword
from index.store.metadata import Metadata, MetaLayers
from index.store.records import ClipRecord, NewClip, SearchFilter, Tag, Timeline
from retrieval.errors import RetrievalError

PEAKS = "peaks"  # the payload key of a clip's waveform peaks
RECORD = qm.PayloadSelectorExclude(exclude=[PEAKS])  # a clip's payload as its record needs it
RECORD_FIELDS = ("name", "location", "sha256", "duration", "sample_rate", "stored_copy", "added_at")
PAYLOAD_INDEXES: layout.PayloadIndexes = (
    ("sha256", qm.PayloadSchemaType.KEYWORD), ("location", qm.PayloadSchemaType.KEYWORD),
    ("audio_sha256", qm.PayloadSchemaType.KEYWORD),
    ("tag_labels", qm.PayloadSchemaType.KEYWORD),
    ("duration", qm.PayloadSchemaType.FLOAT), ("user_tags", qm.PayloadSchemaType.KEYWORD))
WORDS = "words"  # the payload field of the keyword document, under the text index
VOCAB = "vocab"  # the document's distinct words, a keyword field: what a query's prefixes expand against
# collection metadata `keywords`: 1, the text index exists and every point has its words; 2, the words hold
# their stems and every point has its vocabulary; 3, the words hold the fields' values; 4, each word without
# its accents too; 5, words whole with their combining marks, marks that make another letter kept
# (index/store/words.py); 6, the words as the text index takes them whole (`indexed`); 7, the clip's name and
# user text as they are stored now (index/store/names.py: composed, trimmed...), which filters compare with
KEYWORDS_VERSION = 7
VOCAB_INDEX = qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, prefix=True)  # MatchPrefix served
# The word tokenizer: the only one the embedded engine ranks a text query with (it refuses any other, the
# whitespace one too). It cuts at every character that is neither a letter nor a digit (the embedded engine's
# regex [^\W_]+, a server's char::is_alphanumeric), a combining mark included: बारिश (rain) would be three
# words, كَتَبَ four. So the words are written for it in letters and digits alone (`indexed`), each one a single
# token to both, the documents' and the queries' alike; BM25 ranks them
TEXT_INDEX = qm.TextIndexParams(type=qm.TextIndexType.TEXT, tokenizer=qm.TokenizerType.WORD, lowercase=True,
                                scoring=qm.TextScoringParams(type=qm.TextScoringType.BM25))
# an escaped character of a word: ESCAPE and its code point in six hex digits, all full-width letters and
# digits, which no prepared word holds (NFKC makes them the usual ones)
ESCAPE = "\uff58"  # FULLWIDTH LATIN SMALL LETTER X
HEX = str.maketrans({d: chr(ord(d) - ord("0") + 0xFF10) if d.isdigit() else chr(ord(d) - ord("a") + 0xFF41)
                     for d in "0123456789abcdef"})  # 0-9 a-f -> their full-width forms


def payload_of(clip: NewClip, *, id: int, added_at: float) -> dict:
    """The clip's record as a point's payload (without its peaks)."""
    return {"id": id, "name": clip.name, "location": clip.location, "sha256": clip.sha256,
            "duration": float(clip.duration), "sample_rate": int(clip.sample_rate),
            "stored_copy": bool(clip.stored_copy), "added_at": added_at, "audio_sha256": clip.audio_sha256,
            "tags": [{"label": t.label, "probability": float(t.probability)} for t in clip.tags],
            "tag_labels": [t.label.lower() for t in clip.tags],  # tags match case-insensitively
            "description": clip.meta.description, "user_tags": list(clip.meta.tags),
            "fields": clip.meta.field_dict,
            "meta_layers": None if clip.meta_layers is None else clip.meta_layers.to_json(),
            **keywords_payload(clip)}


def keywords_payload(clip: NewClip) -> dict:
    """The clip's keyword document (its words `indexed`) and its vocabulary (the words as they are), as
    payload."""
    doc = keyword.document(clip)
    return {WORDS: " ".join(indexed(w) for w in doc.split()), VOCAB: keyword.vocabulary(doc)}


@functools.lru_cache(maxsize=1 << 16)
def indexed(word: str) -> str:
    """A prepared word (index/store/words.py) as the text index keeps it whole: itself where it is letters
    and digits that lower case leaves as they are (any word of ASCII), else each other character (a
    combining mark) as ESCAPE and its code point in six full-width hex digits. Each word one token, and
    distinct words distinct tokens (ESCAPE itself is escaped)."""
    if word.isascii():
        return word
    return "".join(c if _kept(c) else ESCAPE + f"{ord(c):06x}".translate(HEX) for c in word)


def _kept(c: str) -> bool:
    """Whether a character is a letter or digit to both tokenizers, and stays as it is in lower case."""
    return c != ESCAPE and c.isalnum() and unicodedata.category(c)[0] in "LN" and c.lower() == c


def peaks_payload(t: Timeline | None) -> dict:
    return {} if t is None else {PEAKS: t.peaks.tolist()}


def record_of(point_id: int, payload: dict) -> ClipRecord:
    """The clip record a point's payload holds; a payload that holds none (damaged, or written by another
    tool) is said naming its point, not as the KeyError of its first missing key."""
    try:
        return _record_of(point_id, payload)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RetrievalError(f"the Qdrant point {point_id} holds no whole clip record ({type(e).__name__}: "
                             f"{e} in its payload): restore the collection from a backup, or remove the "
                             "clip") from e


def _record_of(point_id: int, payload: dict) -> ClipRecord:
    tags = tuple(Tag(t["label"], float(t["probability"])) for t in payload["tags"])
    fields = {k: payload[k] for k in RECORD_FIELDS}
    meta = Metadata.from_stored(payload.get("description", ""), payload.get("user_tags", ()),
                                payload.get("fields", {}))  # absent: a point made before metadata
    meta_layers = payload.get("meta_layers")  # absent: a point made before it was kept
    return ClipRecord(id=int(point_id), tags=tags, meta=meta, audio_sha256=payload.get("audio_sha256"),
                      meta_layers=None if meta_layers is None else MetaLayers.from_json_text(meta_layers),
                      **fields)  # no audio_sha256: a point made before fingerprints


def filter_of(flt: SearchFilter | None) -> qm.Filter | None:
    if flt is None or flt.empty:
        return None
    must = []
    if flt.min_duration is not None or flt.max_duration is not None:
        must.append(qm.FieldCondition(key="duration", range=qm.Range(gte=flt.min_duration,
                                                                      lte=flt.max_duration)))
    if flt.tag is not None:
        must.append(qm.FieldCondition(key="tag_labels", match=qm.MatchValue(value=flt.tag.lower())))
    if flt.tags_any:
        must.append(qm.FieldCondition(key="user_tags", match=qm.MatchAny(any=list(flt.tags_any))))
    must += [qm.FieldCondition(key="user_tags", match=qm.MatchValue(value=t)) for t in flt.tags_all]
    must += [qm.FieldCondition(key=f"fields.{k}", match=qm.MatchValue(value=v)) for k, v in flt.fields]
    must_not = [qm.FieldCondition(key="user_tags", match=qm.MatchAny(any=list(flt.tags_none)))] \
        if flt.tags_none else []
    return qm.Filter(must=must or None, must_not=must_not or None)
