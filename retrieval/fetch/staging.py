"""Work in a scratch folder inside the models directory; move into place only what passed verification."""

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

STAGING_PREFIX = ".fetch-"


@contextlib.contextmanager
def staging(models_dir: Path) -> Iterator[Path]:
    """A scratch folder on the models directory's file system (the final move is a rename); always removed."""
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=models_dir))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def move_into_place(src: Path, dest: Path, *, scratch: Path) -> Path:
    """Replace ``dest`` (file or folder) with ``src`` by renames; the old copy goes to ``scratch`` first."""
    if dest.exists():
        os.replace(dest, scratch / f"replaced-{dest.name}")
    os.replace(src, dest)
    log.info("installed %s", dest)
    return dest
