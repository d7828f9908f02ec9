"""The examples of README.md and docs/: their fenced blocks, the `retrieval` command lines and the request
bodies they show, read the way the tests that run them need.

Conventions the docs follow:
- a ```python block runs, in a folder holding `models/all-mpnet-base-v2`, `rain.wav`, `dog.wav`, `sounds/`;
- in ```bash and ```console blocks, each `retrieval ...` command names a command and options that exist;
- a ```json block titled with a route (```json title="POST /search") is a request body the service accepts,
  and so is the `-d '...'` body of a `curl` line.
"""

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<info>[^\n`]*)\n"
                   r"(?P<body>.*?)^(?P=indent)(?P=fence)\s*$", re.M | re.S)
TITLE = re.compile(r'title="([^"]*)"')
SHELL = ("bash", "console", "sh", "shell")
LOCAL = re.compile(r"^(https?://)?(localhost|127\.0\.0\.1)(:\d+)?")  # the service the docs talk to
ROUTE = re.compile(r"^(GET|POST|PATCH|DELETE|PUT) (/\S*)$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    title: str | None
    body: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """README.md and every page of docs/ (the generated reference pages are made at build time)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> Iterator[Block]:
    text = path.read_text()
    for m in FENCE.finditer(text):
        info = m.group("info").strip()
        title = TITLE.search(info)
        indent = len(m.group("indent"))
        body = "\n".join(line[indent:] for line in m.group("body").splitlines())
        yield Block(path, text.count("\n", 0, m.start()) + 1, info.split(" ")[0].lower(),
                    title.group(1) if title else None, body)


def all_blocks() -> list[Block]:
    return [b for p in pages() for b in blocks(p)]


def shell_lines(block: Block) -> list[str]:
    """The block's commands: continuations joined, prompts and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block.body)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if line and not line.startswith("#"):
            out.append(line)
    return out


def retrieval_commands(line: str) -> list[list[str]]:
    """The `retrieval` invocations of a shell line, each as its arguments after `retrieval` (up to a comment,
    a pipe or the next command)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote inside $(...): no retrieval command to read there
        return []
    commands, current = [], None
    for token in tokens:
        if set(token) <= set(";&|"):
            current = None
        elif current is None and token.split("/")[-1] == "retrieval":
            current = []
            commands.append(current)
        elif current is not None:
            current.append(token)
    return commands


@dataclass(frozen=True)
class Request:
    where: str
    method: str
    route: str
    body: str


def requests() -> list[Request]:
    """Every request body the docs show: titled JSON blocks and the bodies of curl lines."""
    found = []
    for b in all_blocks():
        if b.lang == "json" and b.title and (m := ROUTE.match(b.title)):
            found.append(Request(b.where, m.group(1), m.group(2), b.body))
        elif b.lang in SHELL:
            for line in shell_lines(b):
                if line.startswith("curl ") and (r := curl_request(line)) is not None:
                    found.append(Request(b.where, *r))
    return found


def curl_parts(line: str) -> tuple[str, str, dict[str, str], str | None] | None:
    """(method, route, headers, body or None) of a curl line to the local service; None for any other."""
    args = shlex.split(line.split(" | ")[0])
    url = next((a for a in args if LOCAL.match(a)), None)
    if url is None:
        return None
    value = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("-")}
    body = next((value[o] for o in ("-d", "--data", "--data-raw") if o in value), None)
    headers = dict(args[i + 1].split(": ", 1) for i, a in enumerate(args[:-1]) if a in ("-H", "--header"))
    method = value.get("-X", value.get("--request", "GET" if body is None else "POST"))
    return method, "/" + LOCAL.sub("", url).lstrip("/"), headers, body


def curl_request(line: str) -> tuple[str, str, str] | None:
    """(method, route, body) of a curl line that sends a JSON body with -d; None for any other."""
    parts = curl_parts(line)
    if parts is None or parts[3] is None:
        return None
    method, route, _, body = parts
    return method, route, body
