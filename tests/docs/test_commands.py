"""Every `retrieval ...` command line of README.md and docs/ names a command of the CLI and only options
that command has (the typer app's command tree: groups hold `commands`, commands their `params`)."""

import pytest
import typer

from cli.main import app
from tests.docs.markdown import SHELL, all_blocks, retrieval_commands, shell_lines

COMMANDS = [(b.where, args) for b in all_blocks() if b.lang in SHELL
            for line in shell_lines(b) for args in retrieval_commands(line)]


def problems(args: list[str]) -> list[str]:
    """What is wrong with `retrieval ARGS`: an unknown command, or an option its command does not have."""
    command = typer.main.get_command(app)
    rest = list(args)
    path = ["retrieval"]
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        if sub is None:
            return [f"`{' '.join(path)}` has no command {rest[0]!r}"]
        command, path = sub, [*path, rest.pop(0)]
    if hasattr(command, "commands") and "--help" not in rest:
        return [f"`{' '.join(path)}` needs a command"]
    names = {name for p in command.params for name in (*p.opts, *p.secondary_opts)} | {"--help"}
    if "--" in rest:  # what follows is arguments only
        rest = rest[:rest.index("--")]
    options = [t.split("=")[0] for t in rest
               if t.startswith("-") and len(t) > 1 and not t[1:].replace(".", "").isdigit()]  # -0.5: a number
    return [f"`{' '.join(path)}` has no option {o}" for o in options if o not in names]


def test_the_docs_show_commands():
    assert len(COMMANDS) > 20
    heads = {" ".join(t for t in a[:2] if not t.startswith("-")) for _, a in COMMANDS}
    assert heads >= {"index add", "serve", "models fetch"}


def test_a_wrong_command_or_option_is_caught():
    assert problems(["index", "add", "x", "--recursive"]) == []
    assert problems(["index", "nope"]) == ["`retrieval index` has no command 'nope'"]
    assert problems(["serve", "--prot", "1"]) == ["`retrieval serve` has no option --prot"]


@pytest.mark.parametrize("where,args", COMMANDS, ids=[f"{w} {' '.join(a[:2])}" for w, a in COMMANDS])
def test_each_command_line_exists(where, args):
    assert problems(args) == [], where
