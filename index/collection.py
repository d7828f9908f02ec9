"""What the service and the CLI use: a store plus the model, with the verbs a user thinks in.

    Collection.open(store, retriever, data_dir=..., limits=...) -> Collection
    .extract(clips: list[DecodedAudio], on_batch=None) -> list[Extraction]  # PaSST, moment windows too
    .add_extracted(ex, source=path | bytes, sha256=, name=, layers=) -> tuple[ClipRecord, bool]  # created?
    .analysis_of_audio(fingerprint) -> (id, Analysis) | None   .add_analysed(audio, analysis, ...)  # no PaSST
    .search(query: CompositeQuery, k, flt=None, mode="vector", moments=None) -> list[Hit]  # by mode
    .search_text(query: str, k: int, flt=None, moments=None) -> list[Hit]    # each hit with its segment
    .query_vector(query: CompositeQuery, example=None) -> np.ndarray    # (1, D): texts and clips combined
    .search_vector(xq: np.ndarray, k: int, flt=None, exclude=(), moments=None) -> list[Hit]
    .search_keywords(query: str, k: int, flt=None, exclude=()) -> list[Hit]     # BM25 (index/store/words.py)
    .search_hybrid(query: str, xq: np.ndarray, k: int, flt=None, exclude=()) -> list[Hit]  # RRF
    .search_audio(data: bytes, k: int, flt=None, name="query", text=None, moments=None) -> list[Hit]
    .get(id) -> ClipRecord | None      .list(offset, limit) -> list[ClipRecord]     .count() -> int
    .edit_metadata(id, edit: Metadata -> Metadata) -> ClipRecord | None  (description, user tags, fields)
    .give_metadata(id, given) -> ClipRecord | None  (a run's values over a stored clip's, made yours)
    .take_file_metadata(id, found, given=) -> ClipRecord | None  (its file read again: yours over the file's)
    .remove(ids) -> int                 (also deletes stored upload copies)
    .audio_path(record) -> Path         (where the audio can be read for streaming)
    .reproject(checkpoint_path=None) -> int  (new head, stored logits of clips and windows, no PaSST)
    .close()

A hit's `segment` is its clip's best window for the query (None for a clip stored before windows were);
with `moments` (a MomentQuery) the k best moments of the collection come back instead of clips. Clips are
added by :func:`index.ingest.worker.ingest` alone (uploads and `index add`: it skips stored content,
decodes, calls `extract` and `add_extracted`); every clip is stored with its windows (the PaSST windows the
clip vector is the mean of, or with `moment_windowing` those of a second, finer PaSST pass) and its waveform
peaks.

Errors: retrieval.errors.AudioDecodeError (and AudioTooLong) for bad audio, CheckpointMismatch for a
store made with another model. The composition root (app.compose) opens the store and the collection.

Uploads are kept as ``audio/<sha256>.<ext>`` in the data directory (their record's location, relative to it),
written durably before the record is committed: the record is the acknowledgement, and a copy left without
one by a crash is removed at the next open.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from index.fusion import RRF_DEPTH, reciprocal_rank_fusion
from index.layout import AUDIO_DIR, audio_file, stores_of, upload_location
from index.store.checks import check_k
from index.store.contract import ClipChanged, VectorStore
from index.store.metadata import Metadata, MetaLayers
from index.store.names import clip_name
from index.store.records import (
    SEARCH_MODES,
    ClipRecord,
    FileNow,
    Hit,
    MomentQuery,
    NewClip,
    SearchFilter,
    SearchMode,
    Tag,
    Timeline,
)
from index.store.words import query_words
from retrieval.audio import DecodedAudio
from retrieval.checkpoint import load_checkpoint
from retrieval.composite import CompositeQuery, combine
from retrieval.config import Windowing
from retrieval.durable import old_enough, remove_stale_tmp, write_bytes_atomically
from retrieval.errors import ClipNotFound, refuse_one_for_many
from retrieval.extract import AudioLimits, Extraction, decode
from retrieval.pipeline import Retriever
from retrieval.waveform import peaks
from retrieval.windows import window_spans

log = logging.getLogger(__name__)

TOP_TAGS = 10  # tags stored per clip
REPROJECT_CHUNK = 4096  # clips projected at a time
REWRITE_TRIES = 5  # reads and writes of a clip that another process keeps writing meanwhile
# libsndfile container names whose usual extension is not the lower-cased name
EXTENSIONS = {"WAVEX": "wav", "RF64": "wav", "OGG": "ogg", "MP3": "mp3"}

Timer = Callable[[], contextlib.AbstractContextManager]  # what times a step of a search (a metric's `.time`)


@dataclass(frozen=True)
class Analysis:
    """What PaSST and the head made of a clip's audio, as a store keeps it."""

    logits: np.ndarray  # (527,) the clip's (the mean of its PaSST windows')
    vector: np.ndarray  # (D,) the head's projection of them
    timeline: Timeline  # its moment windows (with their logits) and peaks


MOMENTS_BY_VECTOR = "moments are found by the query's vector: use mode `vector` with them"
SHAPES_THE_VECTOR = ("`like`, `unlike` and `not` shape the query's vector: use mode `vector` or `hybrid` "
                     "with them")
NO_WORD = "a keyword query needs a word (letters or digits) to match"


def check_parts(flt: SearchFilter | None, moments: MomentQuery | None) -> None:
    """TypeError for a filter or a moment query of another type (a dict, True), before anything is
    searched."""
    if flt is not None and not isinstance(flt, SearchFilter):
        raise TypeError(f"the filter is a SearchFilter or None, not {type(flt).__name__} "
                        "(SearchFilter(tags_any=[...]))")
    if moments is not None and not isinstance(moments, MomentQuery):
        raise TypeError(f"moments is a MomentQuery or None, not {type(moments).__name__} "
                        "(MomentQuery(per_clip=...))")


def check_search(query: CompositeQuery, mode: str, moments: MomentQuery | None) -> None:
    """ValueError for a search its mode cannot answer as asked (the service answers the same as a 422):
    an unknown mode, moments by keyword, a keyword search shaped by clips or `not`, or with no word;
    TypeError for a query that is no CompositeQuery (a text is :meth:`Collection.search_text`'s)."""
    if not isinstance(query, CompositeQuery):
        raise TypeError(f"the query is a CompositeQuery, not {type(query).__name__} (a text alone: "
                        "search_text, or CompositeQuery(text=...))")
    if mode not in SEARCH_MODES:
        raise ValueError(f"mode {mode!r} is none of {', '.join(SEARCH_MODES)}")
    if moments is not None and mode != "vector":
        raise ValueError(MOMENTS_BY_VECTOR)
    if mode == "keyword":
        if query.like or query.unlike or query.not_ is not None:
            raise ValueError(SHAPES_THE_VECTOR)
        if not query_words(query.text or ""):
            raise ValueError(NO_WORD)


class Collection:
    """A collection of clips: their audio (uploads' stored copies, or files where they lie), their vectors
    and windows in a store, and the model that searches them (module docstring). Made by
    app/compose.py `open_collection`; a context manager that closes its store."""

    def __init__(self, store: VectorStore, retriever: Retriever, *, data_dir: Path,
                 limits: AudioLimits = AudioLimits(), moment_windowing: Windowing | None = None,
                 store_name: str | None = None):
        self.store = store
        self.retriever = retriever
        self.data_dir = Path(data_dir)
        self.limits = limits
        self.moment_windowing = moment_windowing  # None: moments of the PaSST windows (no extra PaSST)
        self.audio_dir = self.data_dir / AUDIO_DIR
        self.store_name = store_name  # among the data directory's stores (index/layout.py stores_of); None:
        # the only one
        self._write = threading.Lock()  # a stored copy and the record that owns it change together

    @classmethod
    def open(cls, store: VectorStore, retriever: Retriever, *, data_dir: Path,
             limits: AudioLimits = AudioLimits(), moment_windowing: Windowing | None = None,
             store_name: str | None = None) -> Collection:
        """The collection over an open store, registered as `store_name` among the data directory's stores
        (None: it is the only one); removes upload copies a crash left without a record, unless other stores
        keep clips in the data directory."""
        collection = cls(store, retriever, data_dir=data_dir, limits=limits,
                         moment_windowing=moment_windowing, store_name=store_name)
        if store_name is not None and (others := stores_of(collection.data_dir, store_name) - {store_name}):
            log.info("the data directory holds other stores too (%s): stored uploads are kept when their "
                     "clips go, since they may be those stores' clips", ", ".join(sorted(others)))
        collection.audio_dir.mkdir(parents=True, exist_ok=True)
        collection._remove_orphan_copies()
        return collection

    # -- adding (index.ingest.worker.ingest: uploads and `index add`) -------------------------------------
    def extract(self, clips: Sequence[DecodedAudio], *,
                on_batch: Callable[[list[int]], None] | None = None) -> list[Extraction]:
        """Decoded clips through PaSST together (:func:`retrieval.extract.extract_many`), each with the
        windows its moments are made of: its PaSST windows (free), or with a finer `moment_windowing` those
        of a second pass."""
        return self.retriever.extract_many(clips, moment_windowing=self.moment_windowing, on_batch=on_batch)

    def add_extracted(self, ex: Extraction, *, source: Path | bytes, sha256: str, name: str,
                      layers: MetaLayers = MetaLayers()) -> tuple[ClipRecord, bool]:
        """Store a clip made by :meth:`extract`: a file indexed where it lies (`source` its path) or an
        upload (`source` its bytes, kept as ``audio/<sha256>.<ext>``), with its metadata: what the user gave
        over what the file says (`layers`, kept as NewClip.meta_layers)."""
        logits = ex.logits  # (527,)
        analysis = Analysis(logits, self.retriever.project(logits[None])[0], self.timeline(ex))
        return self.add_analysed(ex.audio, analysis, source=source, sha256=sha256, name=name, layers=layers)

    def timeline(self, ex: Extraction) -> Timeline:
        """What the store keeps of the clip's time axis: its moment windows projected by the head, and the
        peaks."""
        return Timeline.projected(ex.moment_windows, self.retriever.project, peaks(ex.audio.wave))

    def _stored_analysis(self, id: int) -> Analysis | None:
        """What PaSST and the head made of a stored clip's audio (its logits, vector, windows with their
        logits, peaks), to store for other bytes holding the same samples (where PaSST would find the same);
        None without the clip or its windows."""
        try:
            vectors, logits = self.store.rows([id])  # (1, D), (1, 527)
        except KeyError:
            return None
        timeline = self.store.timelines([id], logits=True).get(id)
        if timeline is None or timeline.windows.logits is None:
            return None
        return Analysis(logits[0], vectors[0], timeline)

    def analysis_of_audio(self, fingerprint: str, *,
                          besides: int | None = None) -> tuple[int, Analysis] | None:
        """The latest clip (other than `besides`) whose samples have this fingerprint and whose windows are
        cut as this collection cuts them now (its moment windowing may have changed since), with its stored
        analysis: what PaSST would give any clip of the same samples."""
        windowing = self.moment_windowing or self.retriever.spec.windowing
        for record in reversed(self.store.with_audio(fingerprint)):
            found = self._stored_analysis(record.id) if record.id != besides else None
            if found is None:
                continue
            starts, ends = window_spans(round(record.duration * windowing.sample_rate), windowing)
            cut = found.timeline.windows
            if len(starts) == len(cut.starts) and np.allclose(starts, cut.starts, atol=1e-3) \
                    and np.allclose(ends, cut.ends, atol=1e-3):
                return record.id, found
        return None

    def add_analysed(self, audio: DecodedAudio, analysis: Analysis, *, source: Path | bytes, sha256: str,
                     name: str, layers: MetaLayers) -> tuple[ClipRecord, bool]:
        """Store the clip of `audio` (see add_extracted) with this analysis of it."""
        copy = source if isinstance(source, bytes) else None
        location = str(source) if copy is None else upload_location(sha256, _extension(audio.format))
        tags = tuple(Tag(label, p) for label, p in self.retriever.top_tags(analysis.logits, TOP_TAGS))
        clip = NewClip(name=clip_name(name), location=location, sha256=sha256, duration=audio.duration_s,
                       sample_rate=audio.source_rate, tags=tags, stored_copy=copy is not None,
                       meta=layers.meta, audio_sha256=audio.fingerprint, meta_layers=layers)
        with self._write:
            stored = self.audio_path(clip) if copy is not None else None
            owned_before = stored is not None and stored.exists()  # the same content, stored meanwhile
            if stored is not None and copy is not None:
                write_bytes_atomically(stored, copy)  # durable before the record acknowledges it
            try:
                record, created = self.store.add_many([clip], analysis.vector[None], analysis.logits[None],
                                                      [analysis.timeline])[0]
            except BaseException:
                if stored is not None and not owned_before:
                    stored.unlink(missing_ok=True)
                raise
        if created:
            log.debug("added %s as clip %d", clip.name, record.id)
        return record, created

    # -- searching ----------------------------------------------------------------------------------------
    def search(self, query: CompositeQuery, k: int, flt: SearchFilter | None = None, *,
               mode: SearchMode = "vector", moments: MomentQuery | None = None,
               encoding: Timer = contextlib.nullcontext, searching: Timer = contextlib.nullcontext
               ) -> list[Hit]:
        """A text query in `mode`: vector (its meaning: the composite's vector, its example clips left out of
        the answer; `moments` in this mode only), keyword (its text's words, BM25; nothing encoded) or
        hybrid (both, fused). `encoding` and `searching` time the two steps apart (the service's metrics).
        ValueError for a negative k or what the mode cannot answer (:func:`check_search`)."""
        k = check_k(k)
        check_search(query, mode, moments)
        check_parts(flt, moments)
        words = query.text or ""
        if mode == "keyword":
            with searching():
                return self.search_keywords(words, k, flt)
        with encoding():
            xq = self.query_vector(query)  # (1, D)
        with searching():
            if mode == "hybrid":
                return self.search_hybrid(words, xq, k, flt, exclude=query.judged)
            return self.search_vector(xq, k, flt, exclude=query.judged, moments=moments)

    def search_text(self, query: str, k: int, flt: SearchFilter | None = None,
                    moments: MomentQuery | None = None) -> list[Hit]:
        """The k best clips (or moments) for a text by its meaning: :meth:`search` in mode `vector`."""
        k = check_k(k)
        check_parts(flt, moments)  # before the text is encoded
        return self.search_vector(self.retriever.encode_text([query]), k, flt, moments=moments)  # (1, D)

    def query_vector(self, query: CompositeQuery, *, example: np.ndarray | None = None) -> np.ndarray:
        """The (1, D) unit vector of a composite query (retrieval/composite.py): its texts through the text
        side, its clips' stored vectors; `example`, an uploaded clip's (D,) vector, is one of the liked."""
        stored = self._stored_vectors([*query.like, *query.unlike])  # (n + m, D); unknown ids before encoding
        texts = [t for t in (query.text, query.not_) if t is not None]
        encoded = dict(zip(texts, self.retriever.encode_text(texts), strict=True)) if texts else {}  # (D,)
        like, unlike = stored[:len(query.like)], stored[len(query.like):]
        if example is not None:
            like = np.vstack([np.asarray(example, dtype=np.float32)[None], like])
        xq = combine(query=None if query.text is None else encoded[query.text], like=like, unlike=unlike,
                     not_=None if query.not_ is None else encoded[query.not_], weights=query.weights)
        return xq[None]

    def _stored_vectors(self, ids: list[int]) -> np.ndarray:
        """(len(ids), D) stored vectors; ClipNotFound naming every id the collection does not hold."""
        if not ids:
            return np.empty((0, self.store.dim), dtype=np.float32)
        try:
            return self.store.vectors(ids)
        except KeyError:
            missing = sorted({i for i in ids if self.store.get(i) is None})
            raise ClipNotFound(f"no clips with ids {', '.join(map(str, missing))}") from None

    def search_vector(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None, *,
                      exclude: frozenset[int] = frozenset(), moments: MomentQuery | None = None) -> list[Hit]:
        """xq: (D,) or (1, D) unit vector -> the k best clips, best first, each with its best window as its
        segment, leaving out the ids in `exclude`; with `moments`, the k best moments of the collection
        instead (of the clips not excluded)."""
        k = check_k(k)
        check_parts(flt, moments)
        xq = np.asarray(xq, dtype=np.float32)
        if xq.ndim == 1:
            xq = xq[None]
        if xq.shape[0] != 1:
            raise ValueError(f"search_vector takes one query vector, got {xq.shape[0]}")
        if moments is not None:  # the excluded clips hold per_clip moments each at most
            found = self.store.search_moments(xq[0], k + len(exclude) * moments.per_clip, flt, moments)
            return [h for h in found if h.record.id not in exclude][:k]
        return self._with_segments(xq, self._vector_ranking(xq, k, flt, exclude))

    def _vector_ranking(self, xq: np.ndarray, k: int, flt: SearchFilter | None,
                        exclude: frozenset[int]) -> list[Hit]:
        hits = self.store.search(xq, k + len(exclude), flt)[0]  # the excluded are len(exclude) at most
        return [h for h in hits if h.record.id not in exclude][:k]

    def _with_segments(self, xq: np.ndarray, hits: list[Hit]) -> list[Hit]:
        """Each hit with its clip's best window for the (1, D) query xq as its segment."""
        best = self.store.best_windows(xq[0], [h.record.id for h in hits])
        return [replace(h, segment=best.get(h.record.id)) for h in hits]

    def search_keywords(self, query: str, k: int, flt: SearchFilter | None = None, *,
                        exclude: frozenset[int] = frozenset()) -> list[Hit]:
        """The clips whose words best match the query's (BM25), best first, without the ids in `exclude`
        (no segment: words say nothing of where in a clip)."""
        k = check_k(k)
        check_parts(flt, None)
        hits = self.store.search_keywords(query, k + len(exclude), flt)
        return [h for h in hits if h.record.id not in exclude][:k]

    def search_hybrid(self, query: str, xq: np.ndarray, k: int, flt: SearchFilter | None = None, *,
                      exclude: frozenset[int] = frozenset()) -> list[Hit]:
        """The vector ranking of xq (the query's (1, D) vector, composite or not) and the keyword ranking of
        the query's text, each RRF_DEPTH deep, joined by reciprocal-rank fusion; scores are the fused ones,
        each hit's segment its best window for xq."""
        k = check_k(k)
        depth = max(k, RRF_DEPTH)
        fused = reciprocal_rank_fusion([self._vector_ranking(xq, depth, flt, exclude),
                                        self.search_keywords(query, depth, flt, exclude=exclude)], k=k)
        return self._with_segments(xq, fused)

    def search_audio(self, data: bytes, k: int, flt: SearchFilter | None = None, name: str = "query", *,
                     text: str | None = None, moments: MomentQuery | None = None,
                     limits: AudioLimits | None = None) -> list[Hit]:
        """Query by example: the clips (or moments) nearest to this audio in the shared space, or with
        `text` to the composite of both (the example in the `like` role: "like this, but with rain"); the
        example held to `limits` (an upload's by default)."""
        ex = self.retriever.extract_many([decode(data, limits=limits or self.limits, name=name)])[0]
        example = self.retriever.project(ex.logits[None])[0]  # (D,)
        xq = self.query_vector(CompositeQuery(text=text), example=example)
        return self.search_vector(xq, k, flt, moments=moments)

    # -- reading and removing -----------------------------------------------------------------------------
    def get(self, id: int) -> ClipRecord | None:
        """The clip with this id, None when the collection holds none."""
        return self.store.get(id)

    def list(self, offset: int = 0, limit: int = 50) -> list[ClipRecord]:
        """A page of the clips, by id: `limit` of them from the `offset`-th (`count()` says how many)."""
        return self.store.list(offset=offset, limit=limit)

    def count(self) -> int:
        """How many clips the collection holds."""
        return self.store.count()

    def edit_metadata(self, id: int, edit: Callable[[Metadata], Metadata]) -> ClipRecord | None:
        """Replace a clip's description, user tags and fields by edit(the ones it has), and where its metadata
        comes from (NewClip.meta_layers) as :meth:`MetaLayers.edited` says: the user's values are those less
        the values only its file said (a form that sends back all it shows, adding a tag, leaves the file's
        values the file's), and a file value the edit took off stays off when the file is read again while
        it says it. The new record, None without the clip. Edits of one collection do not interleave."""
        def change(record: ClipRecord) -> ClipRecord | None:
            meta, layers = edit(record.meta), record.meta_layers
            if not isinstance(meta, Metadata):
                raise TypeError(f"edit_metadata's edit returns a Metadata (Metadata.of(...)), not "
                                f"{type(meta).__name__}")
            kept = None if layers is None else layers.edited(meta)
            if kept is not None and not kept.meta.same(meta):  # a file value it could not show shows now
                meta = kept.meta
            return self.store.set_metadata(id, meta, meta_layers=kept, read=record)  # the tags as given

        return self._rewrite(id, change)

    def _rewrite(self, id: int, change: Callable[[ClipRecord], ClipRecord | None]) -> ClipRecord | None:
        """`change(the clip's record)`, which writes what it makes of it; made again from the record as it is
        then when another process wrote the clip between the read and the write (ClipChanged), so neither
        write undoes the other's. None without the clip. Writes of one collection do not interleave."""
        with self._write:
            for _ in range(REWRITE_TRIES):
                record = self.store.get(id)
                if record is None:
                    return None
                try:
                    return change(record)
                except ClipChanged:
                    log.info("clip %d was written by another process meanwhile: made again from it", id)
            raise ClipChanged(f"clip {id} kept changing while it was written ({REWRITE_TRIES} tries): try "
                              "again")

    def give_metadata(self, id: int, given: Metadata) -> ClipRecord | None:
        """What a run gives a stored clip (`index add`'s flags or CSV, its file unchanged) made the user's,
        over what they set before and what its file says (a value they had taken off, given back); the new
        record (the same one, unwritten, when it changes nothing), None without the clip. A clip stored
        before its file's values were kept apart gets `given` laid over its metadata."""
        def change(record: ClipRecord) -> ClipRecord | None:
            layers = None if record.meta_layers is None else record.meta_layers.given(given, record.meta)
            meta = given.over(record.meta) if layers is None else layers.meta
            if meta.same(record.meta):
                if layers == record.meta_layers:
                    return record  # nothing new: no write
                meta = record.meta  # its tags in their order
            return self.store.set_metadata(id, meta, meta_layers=layers, read=record)

        return self._rewrite(id, change)

    def take_file_metadata(self, id: int, found: Metadata, *, given: Metadata = Metadata(),
                           dropped: Metadata = Metadata(), file_first: bool = False,
                           file: FileNow = FileNow()) -> ClipRecord | None:
        """A clip's file read again (retagged, re-edited, moved, or read for metadata alone): what the user
        set becomes `given` (what this run gives) over what they set before, and the clip's metadata that
        over `found` (what the file says now, kept as the file's; :meth:`MetaLayers.reread`), with what is
        new of the file (`file`: its bytes, its place, its fingerprint) in the same write. What the file
        said before and no longer says leaves the clip; what the user set stays and wins, as it does when a
        clip is first stored; what they took off (and `dropped`, what they took off a clip this one
        replaces) stays off while the file says it. A clip stored before the two were kept apart cannot
        tell them: `found` goes over its tags and fields with `file_first` (its file changed, so what it
        said before must yield), else under them, and what is not the file's counts as the user's from then
        on; its description, when another than the file's now, is kept as the user's either way (it may be
        one they typed: never lost; said in the log, and given the file's the clip follows the file again)."""
        def change(record: ClipRecord) -> ClipRecord | None:
            before = record.meta_layers
            if before is None:  # what is not the file's now counts as the user's
                own = (found.over(record.meta) if file_first else record.meta.over(found)).less(found)
                kept = record.meta.description
                if file_first and kept and kept != found.description:
                    log.warning("clip %d: kept its description %r as yours over its file's %r (stored before "
                                "your metadata and its file's were kept apart); give it the file's to follow "
                                "the file again", id, kept, found.description)
                    own = replace(own, description=kept)
                before = MetaLayers(own=own)
            else:
                before = before.caught_up(record.meta)
            layers = before.reread(found, given=given, dropped=dropped)
            meta = record.meta if layers.meta.same(record.meta) else layers.meta  # its tags in their order
            return self.store.set_metadata(id, meta, meta_layers=layers, file=file, read=record)

        return self._rewrite(id, change)

    def audio_path(self, record: NewClip) -> Path:
        """Where the clip's audio can be read: the indexed file, or the stored copy of an upload."""
        return audio_file(self.data_dir, record.location, record.stored_copy)

    @property
    def shares_uploads(self) -> bool:
        """Whether other stores keep clips in the data directory (read now: one may have opened it since; a
        collection opened without its store's name counts as shared when the folder lists two): an upload's
        copy (named by its content) may be theirs too, so none is removed, as an orphan or with a clip."""
        known = stores_of(self.data_dir)
        return bool(known - {self.store_name}) if self.store_name is not None else len(known) > 1

    def remove(self, ids: Sequence[int]) -> int:
        """Remove clips (ids that do not exist are ignored) and the stored copies of uploads among them (kept
        when other stores share the data directory: the same bytes may be a clip of theirs)."""
        refuse_one_for_many(ids, (str, bytes, int), "clip ids")
        wanted = [operator.index(i) for i in ids]  # before anything is removed: a TypeError for a non-integer
        with self._write:
            records = [r for r in map(self.store.get, wanted) if r is not None]
            removed = self.store.remove([r.id for r in records])
            shared = any(r.stored_copy for r in records) and self.shares_uploads
            for r in records:
                if r.stored_copy and not shared:
                    self.audio_path(r).unlink(missing_ok=True)
        return removed

    def _remove_orphan_copies(self) -> None:
        """Copies whose record never committed (a crash between the two). Recent ones are left alone: they
        may belong to an upload another process is committing right now; with other stores in the data
        directory none is removed (it may be one of their clips)."""
        remove_stale_tmp(self.audio_dir)
        if self.shares_uploads:
            return
        for path in self.audio_dir.iterdir():
            if path.name.startswith(".") or not old_enough(path):
                continue
            record = self.store.get_by_sha256(path.stem)
            if record is None or not record.stored_copy or self.audio_path(record) != path:
                log.info("removing %s: no clip refers to it", path)
                path.unlink(missing_ok=True)

    # -- model --------------------------------------------------------------------------------------------
    def reproject(self, checkpoint_path: Path | None = None, *, progress: bool = False) -> int:
        """Re-project the whole collection and its windows from their stored logits (PaSST is not run) with
        another head, or without one with the collection's own model (vectors made by another model, or that
        no longer match their logits); return how many clips were re-projected. The collection then serves
        with that model."""
        new = self.retriever if checkpoint_path is None else self.retriever.with_checkpoint(
            load_checkpoint(checkpoint_path))
        with self._write:
            ids = self.store.ids().tolist()
            vectors = np.empty((len(ids), new.head.dim), dtype=np.float32)  # (N, D)
            for start in tqdm(range(0, len(ids), REPROJECT_CHUNK), desc="reproject", unit="chunk",
                              disable=not progress):
                chunk = ids[start:start + REPROJECT_CHUNK]
                vectors[start:start + len(chunk)] = new.project(self.store.logits(chunk))
            self.store.replace_vectors(ids, vectors, new.spec, project=new.project)
            self.retriever = new
        log.info("re-projected %d clips with model %s (head %s)", len(ids), new.spec.id, new.spec.head)
        return len(ids)

    def stats(self) -> dict:
        """The store's figures (clips, windows, index kinds, bytes on disk), as `index stats` shows them."""
        return self.store.stats()

    def close(self) -> None:
        """Close the store (it writes what it holds in memory); using the collection after raises
        StoreClosed."""
        self.store.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _extension(container: str) -> str:
    return EXTENSIONS.get(container, container.lower())
