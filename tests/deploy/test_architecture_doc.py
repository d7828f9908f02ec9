"""ARCHITECTURE.md names only what exists: every path it quotes, and every name it puts after a module."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "ARCHITECTURE.md").read_text()
PATH = re.compile(r"`((?:app|cli|index|retrieval|training|tests|benchmarks|docs)/[\w./-]*)`")
NAMED = re.compile(r"`((?:app|cli|index|retrieval|training)/[\w/]+\.py)` `([A-Za-z_][\w.]*)")


def defines(source: str, name: str) -> bool:
    """Whether a module defines `name` (a class, function or constant; Class.member a member of it)."""
    top, _, member = name.partition(".")
    if not re.search(rf"^(class|def|async def) {top}\b|^{top}\b\s*(:|=)", source, re.M):
        return False
    in_class = rf"^    (async )?def {member}\b|^    {member}\b\s*(:|=)"
    return not member or bool(re.search(in_class, source, re.M))


def test_every_path_it_names_exists():
    paths = set(PATH.findall(DOC))
    assert len(paths) > 20  # the layout and the flows are there
    assert [p for p in sorted(paths) if not (ROOT / p).exists()] == []


def test_every_name_it_puts_after_a_module_is_defined_there():
    pairs = set(NAMED.findall(DOC))
    assert len(pairs) > 10
    missing = [f"{path} {name}" for path, name in sorted(pairs)
               if (ROOT / path).is_file() and not defines((ROOT / path).read_text(), name)]
    assert missing == []


def test_the_checks_catch_a_stale_name():
    assert defines("class A:\n    def b(self):\n        pass\n", "A.b")
    assert not defines("class A:\n    def b(self):\n        pass\n", "A.c")
    assert not defines("def other():\n    pass\n", "gone")
