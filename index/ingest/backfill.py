"""Windows for the clips stored without them (indexed before windows were kept, or loaded from shards that
had none): PaSST runs again on the audio the collection can still reach (its stored uploads, and indexed
files still on disk with the content they were indexed with), and each clip's windows and peaks are stored
as it is done; a clip whose audio is another clip's with windows (the same `audio_sha256`: copies of one
sound, as a restore of such a library leaves them) takes that clip's, with no PaSST. A stopped run keeps what
it did; the next one goes on with the clips still without windows. Clips whose audio is gone or changed are
reported, never guessed at.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from index.collection import Collection
from index.store.records import ClipRecord
from retrieval.durable import sha256_file
from retrieval.errors import AudioDecodeError
from retrieval.extract import AudioLimits, decode

log = logging.getLogger(__name__)


@dataclass
class BackfillReport:
    done: int = 0
    unreachable: list[tuple[int, str, str]] = field(default_factory=list)  # (clip id, location, why)
    seconds: float = 0.0


def backfill_windows(collection: Collection, *, progress: bool = True,
                     limits: AudioLimits | None = None) -> BackfillReport:
    """Store windows and peaks for every clip that has none and whose audio can be reached; `limits`: what
    a file may be (those of `index add`; default the collection's, the uploads')."""
    report = BackfillReport()
    start = time.perf_counter()
    todo = collection.store.without_windows().tolist()
    planned = _planned_windows(collection, todo)
    bar = tqdm(total=sum(planned.values()), unit="window", desc="backfill windows", disable=not progress)
    with logging_redirect_tqdm(), bar:
        for clip_id in todo:
            before = bar.n
            why = _backfill(collection, clip_id, limits or collection.limits, bar.update)
            if why is None:
                report.done += 1
            elif why:
                record = collection.get(clip_id)
                report.unreachable.append((clip_id, record.location if record else "", why))
            bar.update(max(planned[clip_id] - (bar.n - before), 0))  # not tagged here, or counted short
            bar.set_postfix(done=report.done, unreachable=len(report.unreachable), refresh=False)
    # one whose file could not be read may share its audio with a clip tagged after it in this run
    for gone in [u for u in report.unreachable if _copied(collection, collection.get(u[0]))]:
        report.unreachable.remove(gone)
        report.done += 1
    for clip_id, _, why in report.unreachable:
        log.warning("clip %d: %s", clip_id, why)
    report.seconds = time.perf_counter() - start
    log.info("backfilled the windows of %d clips; %d could not be reached, in %.1f s", report.done,
             len(report.unreachable), report.seconds)
    return report


def _planned_windows(collection: Collection, clip_ids: list[int]) -> dict[int, int]:
    """Each clip's PaSST windows, from its stored duration: the bar's work."""
    windowing = collection.retriever.spec.windowing
    records = collection.store.records(clip_ids)
    return {i: windowing.n_windows(round(records[i].duration * windowing.sample_rate)) if i in records else 0
            for i in clip_ids}


def _backfill(collection: Collection, clip_id: int, limits: AudioLimits,
              tagged: Callable[[int], None]) -> str | None:
    """None when the clip's windows are stored, "" when the clip is gone meanwhile, else why not; `tagged`
    is told how many of its windows each pass of PaSST did."""
    record = collection.get(clip_id)
    if record is None:
        return ""
    if _copied(collection, record):
        return None
    path = collection.audio_path(record)
    if not path.is_file():
        return f"its audio is gone ({path})"
    if sha256_file(path) != record.sha256:
        return f"{path} changed since it was indexed"
    try:
        audio = decode(path, limits=limits, name=record.name)
    except AudioDecodeError as e:
        return f"its audio cannot be decoded: {e}"
    [ex] = collection.extract([audio], on_batch=lambda clips: tagged(len(clips)))
    return None if collection.store.set_timeline(clip_id, collection.timeline(ex)) else ""


def _copied(collection: Collection, record: ClipRecord | None) -> bool:
    """Whether the clip took the windows and peaks of another clip with its audio (its `audio_sha256`):
    what PaSST would give it, the same samples."""
    if record is None or record.audio_sha256 is None:
        return False
    same = collection.analysis_of_audio(record.audio_sha256, besides=record.id)
    return same is not None and collection.store.set_timeline(record.id, same[1].timeline)
