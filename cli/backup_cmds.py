"""`retrieval backup PATH`, `retrieval restore PATH` and `retrieval check`: a collection's safety net."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.errors import exit_on_error
from cli.progress import progress_option

if TYPE_CHECKING:
    from index.backups.check import CheckReport

SHOWN_PER_KIND = 20


def _some(ids: list[int]) -> str:
    """The first SHOWN_PER_KIND ids, and how many more."""
    more = len(ids) - SHOWN_PER_KIND
    return ", ".join(map(str, ids[:SHOWN_PER_KIND])) + (f" and {more} more" if more > 0 else "")


def _say_problems(problems: list[dict]) -> None:
    for p in problems:
        typer.secho(f"warning: clip {p.get('id')}: {p.get('location')}: {p.get('problem')}", err=True,
                    fg=typer.colors.YELLOW)


def backup(path: Path, *, with_audio: bool, with_referenced: bool, progress: bool):
    from app.compose import load_settings, store_config
    from index.backups.backup import backup as write_backup
    from index.layout import QUEUE_FILE
    from index.stores import require_store

    settings = load_settings()
    require_store(store_config(settings))
    return write_backup(store_config(settings), path, jobs_db=Path(settings.data_dir) / QUEUE_FILE,
                        with_audio=with_audio, with_referenced=with_referenced, progress=progress)


def restore(path: Path, *, restore_referenced: bool, progress: bool):
    from app.compose import build_retriever, load_settings, store_config
    from index.backups.restore import restore as restore_backup

    settings = load_settings()
    return restore_backup(path, store_config(settings),
                          configured=lambda: build_retriever(settings, with_audio=False).spec,
                          progress=progress, restore_referenced=restore_referenced)


def check(*, repair: bool, progress: bool) -> CheckReport:
    from app.compose import build_retriever, load_settings, store_config
    from index.backups.check import check_store
    from index.stores import require_store
    from retrieval.errors import RetrievalError

    settings = load_settings()
    config = store_config(settings)
    if config.backend == "qdrant" and config.qdrant_url is not None:
        from index.qdrant.open import QdrantUnavailable

        try:
            require_store(config)
        except QdrantUnavailable:  # a server not answering is the store's state: a finding, not a refusal
            return check_store(config, repair=repair, progress=progress)
    else:
        require_store(config)
    try:
        retriever = build_retriever(settings, with_audio=False)
    except RetrievalError as e:  # the rest can be checked without the model
        typer.secho(f"warning: vectors not compared with their logits: {e}", err=True, fg=typer.colors.YELLOW)
        return check_store(store_config(settings), repair=repair, progress=progress)
    return check_store(store_config(settings), spec=retriever.spec, project=retriever.project, repair=repair,
                       progress=progress)


def print_check(report: CheckReport) -> None:
    by_kind = defaultdict(list)
    for f in report.findings:
        by_kind[(f.severity, f.kind)].append(f)
    for (severity, kind), findings in sorted(by_kind.items()):
        colour = typer.colors.RED if severity == "error" else typer.colors.YELLOW
        for f in findings[:SHOWN_PER_KIND]:
            typer.secho(f"{severity}: {f.message}", fg=colour)
        if len(findings) > SHOWN_PER_KIND:
            typer.secho(f"{severity}: ... and {len(findings) - SHOWN_PER_KIND} more ({kind})", fg=colour)
    for line in report.repaired:
        typer.secho(f"repaired: {line}", fg=typer.colors.GREEN)
    state = "healthy" if report.healthy else "NOT healthy"
    windows = f" and {report.windows} windows" if report.windows else ""
    typer.echo(f"checked {report.clips} clips{windows}: {len(report.errors)} errors, "
               f"{len(report.warnings)} warnings; the store is {state}")


def register(app: typer.Typer) -> None:
    @app.command("backup")
    def backup_cmd(path: Path = typer.Argument(..., help="the backup file to write (never overwritten)"),
                   without_audio: bool = typer.Option(False, "--without-audio",
                                                      help="leave the uploaded clips' bytes out"),
                   with_referenced: bool = typer.Option(False, "--with-referenced",
                                                        help="copy the files indexed from folders too"),
                   nice: int = typer.Option(10, "--nice", min=0, max=19,
                                            help="run at this lower CPU priority (0: as any command), so "
                                                 "that a service beside it keeps its speed"),
                   progress: bool = progress_option()) -> None:
        """Write the whole collection (records, vectors, logits, model, uploaded audio, waiting uploads) to
        one file, while the service and `index add` go on writing. Exit status 1 when some uploaded clips'
        bytes (with --with-referenced, some files indexed from folders) were missing or changed (the backup
        is written; they are listed)."""
        if nice:
            os.nice(nice)
        with exit_on_error():
            report = backup(path, with_audio=not without_audio, with_referenced=with_referenced,
                            progress=progress)
        typer.echo(f"backed up {report.clips} clips ({report.uploads} uploads with their audio, "
                   f"{report.referenced} indexed from folders"
                   f"{f', {report.referenced_copied} of them copied' if with_referenced else ''}) and "
                   f"{report.jobs} waiting uploads to {path}: {report.size / 1e6:.1f} MB in "
                   f"{report.seconds:.1f} s")
        if without_audio:
            typer.echo("the uploaded clips' audio is not in this backup (--without-audio)")
        _say_problems(report.problems)
        if report.problems:
            raise typer.Exit(1)

    @app.command("restore")
    def restore_cmd(path: Path = typer.Argument(..., help="a file written by `retrieval backup`"),
                    restore_referenced: bool = typer.Option(
                        False, "--restore-referenced",
                        help="write the backup's copies of folder-indexed files where they are missing"),
                    progress: bool = progress_option("progress bars")) -> None:
        """Restore a backup into the configured data directory and store backend (either one, whatever the
        backup came from). The file is verified first; a target that holds clips is refused."""
        with exit_on_error():
            report = restore(path, restore_referenced=restore_referenced, progress=progress)
        if report.finished is not None:
            typer.echo(f"finished the restore of {path} that was stopped while it moved into place: "
                       f"{report.target} holds {report.finished}")
            return
        typer.echo(f"restored {report.clips} clips ({report.uploads} uploads with their audio) and "
                   f"{report.jobs} waiting uploads into {report.target} in {report.seconds:.1f} s")
        if report.without_windows:
            typer.secho(f"warning: this backup ({report.without_windows}) was made before backups held clip "
                        f"windows: its {report.clips} clips were restored without windows and peaks (moment "
                        "search leaves them out, their hits have no segment); `retrieval index "
                        "backfill-windows` makes them (PaSST runs again on their audio)", err=True,
                        fg=typer.colors.YELLOW)
        else:
            none = report.clips - report.clips_with_windows
            typer.echo(f"restored the windows and peaks of {report.clips_with_windows} clips "
                       f"({report.windows} windows)" + (f"; {none} clips had none in the backup either "
                                                        "(`retrieval index backfill-windows` makes them)"
                                                        if none else ""))
        if report.uploads_without_audio:
            typer.secho(f"warning: {len(report.uploads_without_audio)} uploaded clips were backed up without "
                        f"their audio (--without-audio; ids {_some(report.uploads_without_audio)}): they are "
                        "searched, but their audio cannot be served, and `retrieval check` counts them; put "
                        "their files back under audio/ or remove them", err=True, fg=typer.colors.YELLOW)
        if report.jobs_without_bytes:
            typer.secho(f"warning: {report.jobs_without_bytes} waiting uploads were backed up without their "
                        "bytes (--without-audio) and are not queued again", err=True, fg=typer.colors.YELLOW)
        _say_problems(report.problems)
        if report.referenced_missing:
            typer.secho(f"warning: {len(report.referenced_missing)} clips indexed from folders have no file "
                        f"at their path on this machine (ids {_some(report.referenced_missing)}); "
                        "their audio cannot be served until the files are put back", err=True,
                        fg=typer.colors.YELLOW)
        if report.referenced_written:
            typer.echo(f"wrote {report.referenced_written} folder-indexed files back to their paths")

    @app.command("check")
    def check_cmd(repair: bool = typer.Option(False, "--repair",
                                              help="rebuild the FAISS caches (clips' and windows'), remove "
                                                   "orphan files (never a record or a stored upload)"),
                  progress: bool = progress_option()) -> None:
        """Check the store: SQLite integrity, the FAISS caches of clips and windows, every stored upload's
        bytes, the files indexed from folders, vectors against logits, orphan files. Exit status 0 when
        healthy, 1 otherwise."""
        with exit_on_error():
            report = check(repair=repair, progress=progress)
            if repair and report.repaired:
                print_check(report)
                typer.echo("checking again after the repairs:")
                report = check(repair=False, progress=progress)
        print_check(report)
        if not report.healthy:
            raise typer.Exit(1)
