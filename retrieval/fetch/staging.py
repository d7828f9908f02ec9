"""Work in a scratch folder inside the models directory; move into place only what passed verification.

What is written into the scratch folder (downloads, copies, joined and extracted archives) is a staged file
or folder in :mod:`retrieval.durable`'s sense: nothing reads it by name, and :func:`move_into_place` fsyncs it
all before one rename gives it its name.
"""

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from retrieval import durable

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
    """Replace ``dest`` (file or folder) with ``src`` by renames, durably
    (:func:`retrieval.durable.move_into_place`); the old copy goes to ``scratch`` first."""
    durable.move_into_place(src, dest, aside=scratch / f"replaced-{dest.name}")
    log.info("installed %s", dest)
    return dest
