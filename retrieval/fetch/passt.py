"""The PaSST checkpoint from its release URL (the one hear21passt uses), or from a folder.

Upstream publishes no checksum: the size and sha256 of what was fetched are recorded beside the file
(``<file>.json``) and logged, and a file that does not match a configured pin is refused.
"""

import hashlib
import json
import logging
import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retrieval.config import PASST_FILENAME, PASST_URL
from retrieval.durable import CHUNK, write_json_atomically
from retrieval.errors import FetchFailed, ModelNotFound
from retrieval.fetch.staging import move_into_place
from retrieval.fetch.verify import Digest, Pin, check_digest, check_file, progress

log = logging.getLogger(__name__)

Opener = Callable[[str], Any]  # a context manager with .read() and .headers, like urlopen's answer


def record_path(models_dir: Path) -> Path:
    return models_dir / f"{PASST_FILENAME}.json"


def download_url(url: str, dest: Path, *, opener: Opener = urllib.request.urlopen) -> Digest:
    """Stream ``url`` into ``dest`` with a progress bar, hashing on the way; a short read is refused."""
    h, size = hashlib.sha256(), 0
    try:
        with opener(url) as resp, open(dest, "wb") as out:
            length = resp.headers.get("Content-Length")
            total = int(length) if length else None
            with progress(total, dest.name) as bar:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
    except OSError as e:  # URLError and HTTPError are OSErrors
        raise FetchFailed(f"download of {url} failed: {e}") from e
    if total is not None and size != total:
        raise FetchFailed(f"download of {url} ended after {size} of {total} bytes")
    return Digest(sha256=h.hexdigest(), size=size)


def install_passt(src: Path, models_dir: Path, *, pin: Pin, source: str, scratch: Path,
                  digest: Digest | None = None) -> Digest:
    """Hold ``src`` to ``pin``, move it to ``models_dir/PASST_FILENAME`` and record its size and sha256."""
    what = f"PaSST checkpoint {PASST_FILENAME}"
    digest = check_digest(digest, pin, what=what) if digest else check_file(src, pin, what=what)
    move_into_place(src, models_dir / PASST_FILENAME, scratch=scratch)
    record = {"file": PASST_FILENAME, "sha256": digest.sha256, "size": digest.size, "source": source}
    write_json_atomically(record_path(models_dir), record, indent=2)
    log.info("%s: %d bytes, sha256 %s (pin it with RETRIEVAL_PASST_SHA256)", what, digest.size, digest.sha256)
    return digest


def fetch_passt_url(models_dir: Path, *, pin: Pin, scratch: Path, url: str = PASST_URL,
                    opener: Opener = urllib.request.urlopen) -> Digest:
    staged = scratch / PASST_FILENAME
    log.info("downloading %s", url)
    digest = download_url(url, staged, opener=opener)
    return install_passt(staged, models_dir, pin=pin, source=url, scratch=scratch, digest=digest)


def import_passt(folder: Path, models_dir: Path, *, pin: Pin, scratch: Path) -> Digest:
    """Copy ``folder/PASST_FILENAME`` (weights carried in by hand) into the models directory, verified."""
    src = folder / PASST_FILENAME
    if not src.is_file():
        raise ModelNotFound(f"no {PASST_FILENAME} in {folder}")
    staged = scratch / PASST_FILENAME
    shutil.copy2(src, staged)
    return install_passt(staged, models_dir, pin=pin, source=f"folder {folder}", scratch=scratch)


def verify_passt(models_dir: Path, *, pin: Pin) -> dict:
    """Hold the installed checkpoint to its recorded digest and to ``pin``; returns the record."""
    path = models_dir / PASST_FILENAME
    if not path.is_file():
        raise ModelNotFound(f"PaSST checkpoint not installed at {path}; run `retrieval models fetch`")
    record = json.loads(record_path(models_dir).read_text()) if record_path(models_dir).is_file() else {}
    recorded = Pin(sha256=record.get("sha256"), size=record.get("size"))
    digest = check_file(path, recorded, what=f"PaSST checkpoint {path} (against its record)")
    check_digest(digest, pin, what=f"PaSST checkpoint {path} (against the configured pin)")
    return record or {"file": PASST_FILENAME, "sha256": digest.sha256, "size": digest.size,
                      "source": "unknown"}
