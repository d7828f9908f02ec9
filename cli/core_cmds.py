"""`retrieval tag`: the tagger and the model on one file, for a quick look."""

from pathlib import Path

import typer

from cli.errors import exit_on_error


def tag(path: Path, k: int = 10) -> list[tuple[str, float]]:
    """Top-k AudioSet tags of one audio file with the configured PaSST weights."""
    from retrieval.audio import decode_audio
    from retrieval.labels import top_tags
    from retrieval.pipeline import load_tagger
    from retrieval.settings import get_settings

    settings = get_settings()
    audio = decode_audio(path, max_duration_s=settings.max_duration_s)
    return top_tags(load_tagger(settings).logits(audio.wave), k)


def register(app: typer.Typer) -> None:
    @app.command("tag")
    def tag_cmd(path: Path = typer.Argument(..., help="audio file"),
                k: int = typer.Option(10, "-k", help="how many tags")) -> None:
        """Print the top AudioSet tags PaSST gives one audio file."""
        with exit_on_error():
            for label, p in tag(path, k):
                typer.echo(f"{p:.3f}  {label}")
