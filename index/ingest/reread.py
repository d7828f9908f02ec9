"""`retrieval index reread-metadata`: the metadata inside the indexed files (and their UCS names) read again,
for stores indexed before it was read at ingestion; PaSST does not run. A clip stored before audio
fingerprints were kept gets its `audio_sha256` too, when its file still holds the bytes it was indexed from
(decoded, not tagged), so that a later retag of the file keeps the clip (index/ingest/worker.py).

Each clip's metadata becomes what the user set laid over what its file says now (:meth:`Metadata.over`:
what the user set wins, part by part; what the file said before and no longer says goes; what the user took
off stays off while the file says it: :meth:`MetaLayers.reread`), written through
:meth:`Collection.take_file_metadata`. Resumable: a ledger (one
line ``<clip id> <sha256>`` per clip read, index/layout.py ``metadata_ledger``) names the clips done, which
a later run skips (``again`` starts it afresh). Clips whose file cannot be reached are reported and left out
of the ledger, so the next run tries them again.
"""

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from index.collection import Collection
from index.ingest.embedded import file_metadata
from index.store.records import ClipRecord, FileNow
from retrieval.durable import append_line, sha256_file, write_text_atomically
from retrieval.errors import AudioDecodeError
from retrieval.extract import decode

log = logging.getLogger(__name__)


@dataclass
class RereadReport:
    read: int = 0  # clips whose file was read this run
    changed: int = 0  # of those, how many got new metadata
    fingerprinted: int = 0  # of those, how many got their audio fingerprint (stored before they were kept)
    skipped: int = 0  # read by an earlier run (in the ledger)
    unreachable: list[tuple[int, str, str]] = field(default_factory=list)  # (clip id, location, why)
    seconds: float = 0.0


def reread_metadata(collection: Collection, *, ledger: Path, again: bool = False,
                    progress: bool = True) -> RereadReport:
    """Read every clip's file's metadata again, except the clips the ledger names; see the module
    docstring."""
    start = time.perf_counter()
    if again or not ledger.is_file():
        write_text_atomically(ledger, "")
    done = set(ledger.read_text(encoding="utf-8").split("\n"))
    report = RereadReport()
    bar = tqdm(collection.store.ids().tolist(), unit="clip", desc="reread metadata", disable=not progress)
    with logging_redirect_tqdm(), bar:
        for clip_id in bar:
            record = collection.get(clip_id)
            if record is None:
                continue
            entry = f"{clip_id} {record.sha256}"
            if entry in done:
                report.skipped += 1
                continue
            path = collection.audio_path(record)
            if not (path.is_file() and os.access(path, os.R_OK)):
                why = f"its file {'cannot be read' if path.exists() else 'is gone'} ({path})"
                report.unreachable.append((clip_id, record.location, why))
                log.warning("clip %d: %s", clip_id, why)
                continue
            found = file_metadata(path, record.name)
            layers = record.meta_layers
            # whether its file changed matters only for a fingerprint to take or layers to split: a whole
            # archive's files are not hashed again on every run
            same_bytes = (record.audio_sha256 is not None and layers is not None) \
                or sha256_file(path) == record.sha256
            fingerprint = _fingerprint(record, path) if same_bytes else None
            # layers.meta differs from the clip's after a PATCH stored before what it takes off was kept
            stale = layers is None or layers.file != found or not layers.meta.same(record.meta)
            if fingerprint is not None or stale:
                # a file changed since the clip was stored: what it said then yields (as in `index add`)
                now = collection.take_file_metadata(clip_id, found, file_first=not same_bytes,
                                                    file=FileNow(audio_sha256=fingerprint))
                report.changed += now is not None and now.meta != record.meta
                report.fingerprinted += fingerprint is not None
            append_line(ledger, entry)
            report.read += 1
            bar.set_postfix(read=report.read, changed=report.changed, unreachable=len(report.unreachable),
                            refresh=False)
    report.seconds = time.perf_counter() - start
    log.info("read the metadata of %d clips (%d changed, %d fingerprinted, %d done before); %d could not be "
             "reached, in %.1f s", report.read, report.changed, report.fingerprinted, report.skipped,
             len(report.unreachable), report.seconds)
    return report


def _fingerprint(record: ClipRecord, path: Path) -> str | None:
    """The audio fingerprint of a clip stored without one, from its file (which holds the bytes the clip was
    indexed from; other bytes: `index add` takes the file as it is now); None when it has one."""
    if record.audio_sha256 is not None:
        return None
    try:
        return decode(path, name=record.name).fingerprint  # a long file: read block by block
    except AudioDecodeError as e:
        log.warning("clip %d: its audio could not be fingerprinted: %s", record.id, e)
        return None
