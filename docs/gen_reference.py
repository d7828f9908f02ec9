"""Pages generated from the code and the repository at build time (run by mkdocs-gen-files).

- reference/settings.md: every field of `app.settings.Settings`, with its environment variable;
- reference/cli.md: every command and option of the `retrieval` command line (`cli.main:app`);
- performance.md gets the list of every script in benchmarks/ (with the first paragraph of its docstring);
- deployment.md gets the Dockerfile's RUN, CMD and HEALTHCHECK instructions, read from the Dockerfile;
- performance-results.md: benchmarks/RESULTS.md, with its links made to work inside the site;
- architecture.md: ARCHITECTURE.md, likewise.

Nothing here is copied by hand: change the code or the file and the page follows.
"""

from __future__ import annotations

import ast
import re
import sys
import types
import typing
from pathlib import Path

import mkdocs_gen_files
import typer.main

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.settings import Settings  # noqa: E402
from cli.main import app  # noqa: E402
from docs.dockerfile import dockerfile_instructions  # noqa: E402

# Repository files that have a page of their own in the site: a link to one becomes a link to its page.
PAGES = {
    "README.md": "index.md",
    "ARCHITECTURE.md": "architecture.md",
    "benchmarks/RESULTS.md": "performance-results.md",
}


def cell(text: object) -> str:
    """Text made safe for one Markdown table cell: HTML's characters escaped outside code spans (inside one
    Markdown shows them as they are, and an entity would show as typed: `-g&lt;N&gt;`)."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    parts = re.split(r"(`[^`]*`)", text)  # odd parts: the code spans
    return "".join(part if i % 2 else part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                   for i, part in enumerate(parts))


# -- settings ---------------------------------------------------------------------------------------------


def type_name(annotation: object) -> str:
    if annotation is None or annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field) -> str:
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`"
    if field.default is None:
        return "unset"
    value = field.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`" if not isinstance(value, str) else f"`{value}`" if value else '`""`'


def bounds(field) -> str:
    parts = []
    for m in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                parts.append(f"{sign} {getattr(m, attr)}")
        if getattr(m, "pattern", None):
            parts.append(f"matches `{m.pattern}`")
    return ", ".join(parts)


def settings_page() -> str:
    prefix = Settings.model_config.get("env_prefix", "")
    lines = [
        "# Settings",
        "",
        "Every setting of the service and the command line: one object, `app.settings.Settings` "
        "(pydantic-settings), read once at start-up from environment variables named "
        f"`{prefix}<NAME>` (case-insensitive). Settings that contradict each other are refused at start "
        "with a message naming them (see [Getting started](../getting-started.md#configuration)).",
        "",
        "*This page is generated from `app/settings.py` when the site is built.*",
        "",
        "| environment variable | type | default | bounds | description |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        env = f"{prefix}{name}".upper()
        cells = [f"`{env}`", type_name(field.annotation), cell(default_text(field)), cell(bounds(field)),
                 cell(field.description or "")]
        lines.append(f"| {' | '.join(cells)} |")
    lines.append("")
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------------------------


def is_group(command) -> bool:
    return bool(getattr(command, "commands", None))


def param_type(param, ctx) -> str:
    """The type as `--help` shows it (typer's own display), with its range."""
    if getattr(param, "is_flag", False):
        return "flag"
    shown = param.display_type(ctx).strip("<>")
    if getattr(param, "nargs", 1) == -1:
        shown += ", several"
    number_range = param._get_number_range_help_str()
    if number_range:
        shown += f" ({number_range})"
    return cell(shown)


def param_default(param) -> str:
    if param.required:
        return "required"
    default = param.default
    if default is None or default == () or default == [] or callable(default):
        return ""
    if getattr(param, "is_flag", False) and param.secondary_opts:
        return f"`{param.opts[0] if default else param.secondary_opts[0]}`"
    if getattr(param, "is_flag", False):
        return "on" if default else ""
    if isinstance(default, (list, tuple)):
        return cell(", ".join(map(str, default)))
    return f"`{cell(default)}`"


def walk(command, path: list[str]):
    yield path, command
    if is_group(command):
        for name in sorted(command.commands):
            yield from walk(command.commands[name], [*path, name])


def cli_page() -> str:
    root = typer.main.get_command(app)
    ctx = typer.Context(root)
    lines = [
        "# Command line",
        "",
        "Every command and option of `retrieval` (the typer app `cli.main:app`). "
        "`retrieval COMMAND --help` prints the same.",
        "",
        "*This page is generated from the code in `cli/` when the site is built.*",
        "",
    ]
    for path, command in walk(root, ["retrieval"]):
        title = " ".join(path)
        lines += [f"## {title}", ""]
        help_text = " ".join((command.help or "").split())
        if help_text:
            lines += [help_text, ""]
        args = [p for p in command.params if p.param_type_name == "argument"]
        opts = [p for p in command.params if p.param_type_name == "option" and not p.hidden
                and p.name not in ("install_completion", "show_completion")]
        usage = " ".join(p.name.upper() + ("..." if p.nargs == -1 else "") for p in args)
        usage = f"{title} [OPTIONS]{' ' + usage if usage else ''}{' COMMAND' if is_group(command) else ''}"
        lines += ["```text", usage, "```", ""]
        if is_group(command):
            subs = ", ".join(f"[`{name}`](#{'-'.join([*path, name])})" for name in sorted(command.commands))
            lines += [f"Commands: {subs}.", ""]
        if args:
            lines += ["| argument | type | | help |", "|---|---|---|---|"]
            for p in args:
                lines.append(f"| `{p.name.upper()}` | {param_type(p, ctx)} | {param_default(p)} "
                             f"| {cell(getattr(p, 'help', '') or '')} |")
            lines.append("")
        if opts:
            lines += ["| option | type | default | help |", "|---|---|---|---|"]
            for p in opts:
                names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
                cells = [names, param_type(p, ctx), param_default(p), cell(p.help or "")]
                lines.append(f"| {' | '.join(cells)} |")
            lines.append("")
    return "\n".join(lines)


# -- included files ---------------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")


def relink(text: str, source: str, page: str) -> str:
    """Make the links of a repository file work from its page: links to files with a page go to that page,
    links to other repository files become code text (the path), web links and anchors stay."""
    source_dir = Path(source).parent
    depth = len(Path(page).parent.parts)

    def fix(m: re.Match) -> str:
        label, target = m.group(1), m.group(2)
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            return m.group(0)
        path, _, anchor = target.partition("#")
        repo_path = (source_dir / path).as_posix()
        repo_path = str(Path(repo_path)).replace("\\", "/")
        parts = []
        for part in repo_path.split("/"):
            if part == "..":
                parts.pop() if parts else None
            elif part not in ("", "."):
                parts.append(part)
        repo_path = "/".join(parts)
        if repo_path in PAGES:
            return f"[{label}]({'../' * depth}{PAGES[repo_path]}{'#' + anchor if anchor else ''})"
        return label if label.startswith("`") else f"{label} (`{repo_path}`)" if label != repo_path else \
            f"`{repo_path}`"

    return LINK.sub(fix, text)


def include(source: str, page: str, note: str) -> None:
    text = (ROOT / source).read_text(encoding="utf-8")
    lines = text.splitlines()
    # the first heading stays the page's title; the note goes under it
    head = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    body = relink(text, source, page)
    body_lines = body.splitlines()
    if head is not None:
        body_lines.insert(head + 1, f"\n*{note}*\n")
    with mkdocs_gen_files.open(page, "w") as f:
        f.write("\n".join(body_lines) + "\n")
    mkdocs_gen_files.set_edit_path(page, Path("..") / source)


def script_summary(path: Path) -> str:
    """The first paragraph of a script's docstring (Python) or of its leading comment (shell)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        doc = ast.get_docstring(ast.parse(text)) or ""
    else:
        comment = []
        for line in text.splitlines()[1:]:
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("#").strip())
        doc = "\n".join(comment)
    return doc.split("\n\n")[0]


def benchmarks_table() -> str:
    lines = ["| script | how to run it | what it does |", "|---|---|---|"]
    for path in sorted((ROOT / "benchmarks").iterdir()):
        if path.suffix not in (".py", ".sh") or path.name == "__init__.py":
            continue
        if path.suffix == ".sh":
            run = f"`bash benchmarks/{path.name}`"
        elif path.stem in ("common", "server"):
            run = "(used by the others)"
        elif path.stem == "load":
            run = "`python benchmarks/load.py --help`"
        else:
            run = f"`python -m benchmarks.{path.stem} --help`"
        lines.append(f"| `benchmarks/{path.name}` | {run} | {cell(script_summary(path))} |")
    return "\n".join(lines) + "\n"


def dockerfile_block() -> str:
    """The Dockerfile's RUN, CMD and HEALTHCHECK instructions as a ```dockerfile block."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    documented = [i for i in dockerfile_instructions(text) if i.split()[0] in ("RUN", "CMD", "HEALTHCHECK")]
    return "\n```dockerfile\n" + "\n".join(documented) + "\n```\n"


def main() -> None:
    with mkdocs_gen_files.open("deployment.md", "a") as f:
        f.write(dockerfile_block())
    with mkdocs_gen_files.open("performance.md", "a") as f:
        f.write("\n" + benchmarks_table())
    with mkdocs_gen_files.open("reference/settings.md", "w") as f:
        f.write(settings_page())
    mkdocs_gen_files.set_edit_path("reference/settings.md", Path("..") / "app/settings.py")
    with mkdocs_gen_files.open("reference/cli.md", "w") as f:
        f.write(cli_page())
    include("benchmarks/RESULTS.md", "performance-results.md",
            "This page is `benchmarks/RESULTS.md`, included when the site is built.")
    include("ARCHITECTURE.md", "architecture.md", "This page is `ARCHITECTURE.md`, included when the site is "
            "built.")


main()
