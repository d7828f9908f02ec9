"""`retrieval tag`: the tagger and the model on one file, for a quick look."""

from pathlib import Path

import typer

from cli.errors import exit_on_error


def tag(path: Path, k: int = 10) -> list[tuple[str, float]]:
    """Top-k AudioSet tags of one audio file with the configured PaSST weights."""
    from app.compose import index_limits, load_settings, load_tagger
    from retrieval.extract import extract
    from retrieval.labels import top_tags

    settings = load_settings()
    return top_tags(extract(path, load_tagger(settings), limits=index_limits(settings)).logits, k)


def register(app: typer.Typer) -> None:
    @app.command("tag")
    def tag_cmd(path: Path = typer.Argument(..., help="audio file"),
                k: int = typer.Option(10, "-k", min=1, max=527, help="how many tags (of the 527)")) -> None:
        """Print the top AudioSet tags PaSST gives one audio file."""
        with exit_on_error():
            for label, p in tag(path, k):
                typer.echo(f"{p:.3f}  {label}")
