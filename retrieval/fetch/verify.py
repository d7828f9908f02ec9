"""Pins (expected size and sha256) and the checks that hold a file to one, with a progress bar."""

import logging
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from retrieval.durable import sha256_file
from retrieval.errors import ModelNotFound, WeightsMismatch

log = logging.getLogger(__name__)

# files under this size hash too fast to be worth a progress bar
PROGRESS_MIN_BYTES = 16 << 20


@dataclass(frozen=True)
class Pin:
    """What a file must be; a field left None is not checked (a PaSST download with no pin configured)."""

    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Digest:
    """What a file is."""

    sha256: str
    size: int


def progress(total: int | None, desc: str) -> tqdm:
    """A byte progress bar with rate and ETA; silent for small files."""
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                disable=total is not None and total < PROGRESS_MIN_BYTES)


def digest_file(path: Path) -> Digest:
    size = path.stat().st_size
    with progress(size, f"sha256 {path.name}") as bar:
        return Digest(sha256=sha256_file(path, on_chunk=bar.update), size=size)


def check_digest(digest: Digest, pin: Pin, *, what: str) -> Digest:
    """Raise WeightsMismatch unless ``digest`` satisfies ``pin``."""
    if pin.size is not None and digest.size != pin.size:
        raise WeightsMismatch(f"{what}: {digest.size} bytes, expected {pin.size}; refused")
    if pin.sha256 is not None and digest.sha256 != pin.sha256.lower():
        raise WeightsMismatch(f"{what}: sha256 {digest.sha256}, expected {pin.sha256.lower()}; refused")
    return digest


def check_file(path: Path, pin: Pin, *, what: str | None = None) -> Digest:
    """Hash ``path`` and hold it to ``pin``; the size is compared first so a truncated file fails at once."""
    what = what or str(path)
    if not path.is_file():
        raise ModelNotFound(f"{what}: no file at {path}")
    if pin.size is not None:
        check_digest(Digest(sha256="", size=path.stat().st_size), Pin(size=pin.size), what=what)
    digest = check_digest(digest_file(path), pin, what=what)
    log.info("%s verified: %d bytes, sha256 %s", what, digest.size, digest.sha256)
    return digest
