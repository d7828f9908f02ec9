"""`retrieval index extract-ray` and `retrieval index load-shards`: index a collection too large for one
machine (PaSST on a Ray cluster to Parquet shards, then the shards into the configured store)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.errors import exit_on_error
from cli.progress import progress_option

if TYPE_CHECKING:
    from collections.abc import Iterator

    from index.ingest.bulk_load import LoadReport


@contextlib.contextmanager
def ray_data_bars(shown: bool) -> Iterator[None]:
    """Ray Data's progress bars (its own tqdm bars, one per stage) on or off for the datasets run meanwhile,
    then as they were: off in a log or a pipe, where each redraw would be a line."""
    from ray.data import DataContext

    context = DataContext.get_current()
    before, context.enable_progress_bars = context.enable_progress_bars, shown
    try:
        yield
    finally:
        context.enable_progress_bars = before


def extract_ray(file_list: Path, out_dir: Path, *, address: str | None = None, cpu_actors: int = 1,
                batch_size: int = 16, num_cpus: int | None = None, progress: bool = True) -> dict:
    """PaSST logits of every file in file_list as Parquet shards in out_dir, on Ray (a cluster at
    `address`, or one started on this machine); returns the shard folder's manifest. Ray Data's progress
    bars are drawn with ``progress``."""
    import ray

    from app.compose import index_limits, load_settings, moment_windowing, passt_spec, passt_weights
    from index.ingest.ray_shards import TaggerConfig, extract_shards, read_file_list

    settings = load_settings()
    tagger = TaggerConfig(weights=passt_weights(settings), spec=passt_spec(settings),
                          batch_windows=settings.batch_windows, precision=settings.passt_precision,
                          moment_windowing=moment_windowing(settings))
    paths = read_file_list(file_list)
    ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False)
    try:
        with ray_data_bars(progress):
            return extract_shards(paths, out_dir, tagger=tagger, batch_size=batch_size, cpu_actors=cpu_actors,
                                  limits=index_limits(settings))
    finally:
        ray.shutdown()


def load_shards(shard_dir: Path, *, redo: bool = False, progress: bool = True) -> LoadReport:
    """Every clip of the shards into the configured store, through the configured model."""
    from app.compose import build_retriever, ledger_path, load_settings, open_collection
    from index.ingest.bulk_load import load_shards as load
    from index.ingest.bulk_load import read_manifest

    settings = load_settings()
    retriever = build_retriever(settings, with_audio=False)
    read_manifest(shard_dir, retriever)  # a folder that holds no shards makes no collection
    with open_collection(settings, retriever) as collection:
        return load(collection, shard_dir, ledger=ledger_path(settings), redo=redo, progress=progress)


def _index_group(app: typer.Typer) -> typer.Typer:
    """The `index` sub-app when it is registered, else the top level."""
    for group in app.registered_groups:
        if group.name == "index" and group.typer_instance is not None:
            return group.typer_instance
    return app


def register(app: typer.Typer) -> None:
    group = _index_group(app)

    @group.command("extract-ray")
    def extract_ray_cmd(
            file_list: Path = typer.Argument(..., help="text file, one audio path a line (every worker must "
                                                       "see the paths)"),
            out: Path = typer.Option(..., "--out", help="folder for the Parquet shards (shared storage)"),
            address: str = typer.Option(None, help="Ray cluster address, e.g. auto; unset = start Ray here"),
            cpu_actors: int = typer.Option(1, min=1, help="PaSST actors when the cluster has no GPU"),
            batch_size: int = typer.Option(16, min=1, help="clips per PaSST actor call"),
            num_cpus: int = typer.Option(None, min=1, help="CPUs of a Ray started here (default: all)"),
            progress: bool = progress_option("Ray Data's progress bars"),
    ) -> None:
        """Extract PaSST logits with Ray Data: decode on CPU workers, one PaSST actor per GPU (or
        --cpu-actors on CPU), Parquet shards + manifest.json in --out. Load them with `index load-shards`.
        Exit status 1 when some files could not be extracted (they are listed; their rows say why)."""
        from index.ingest.ray_shards import shard_failures

        with exit_on_error():
            manifest = extract_ray(file_list, out, address=address, cpu_actors=cpu_actors,
                                   batch_size=batch_size, num_cpus=num_cpus, progress=progress)
            failed = shard_failures(out, manifest["written"])
        typer.echo(f"{len(manifest['shards'])} shard(s) in {out}; failed {len(failed)}; next: "
                   f"retrieval index load-shards {out}")
        for path, reason in failed:
            typer.secho(f"failed: {path}: {reason}", err=True, fg=typer.colors.YELLOW)
        if failed:
            raise typer.Exit(1)

    @group.command("load-shards")
    def load_shards_cmd(shard_dir: Path = typer.Argument(..., help="folder written by `index extract-ray`"),
                        redo: bool = typer.Option(False, help="ignore the record of shards already loaded"),
                        progress: bool = progress_option()) -> None:
        """Project the shards' logits through the configured head and add the clips to the configured store
        (FAISS or Qdrant). Resumable: loaded shards are remembered, stored content is skipped.
        Exit status 1 when some files had failed extraction (they are listed)."""
        with exit_on_error():
            report = load_shards(shard_dir, redo=redo, progress=progress)
        typer.echo(f"loaded {report.shards_loaded} shard(s) ({report.shards_skipped} loaded before): "
                   f"added {report.added}, skipped {report.skipped} already stored, "
                   f"failed {len(report.failed)} in {report.seconds:.1f} s")
        if report.moved or report.retagged or report.replaced:
            typer.echo(f"{report.moved} clip(s) followed their moved or renamed files; {report.retagged} "
                       f"clip(s) of retagged files kept, with their new metadata; {report.replaced} clip(s) "
                       "of changed files replaced by what the files hold now")
        for name, reason in report.failed:
            typer.secho(f"failed: {name}: {reason}", err=True, fg=typer.colors.YELLOW)
        if report.failed:
            raise typer.Exit(1)
