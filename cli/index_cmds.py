"""`retrieval index add | stats | remove | reproject | backfill-windows | reread-metadata | export-metadata`
and `retrieval search`: a collection from the shell."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.errors import exit_on_error
from cli.progress import progress_option
from index.store.records import SearchMode
from retrieval.errors import RetrievalError
from retrieval.file_types import suffix_list

if TYPE_CHECKING:
    from cli.metadata_csv import ExportReport, LibraryMetadata
    from index.collection import Collection
    from index.ingest.backfill import BackfillReport
    from index.ingest.builder import BuildReport
    from index.ingest.reread import RereadReport
    from index.store.records import Hit, SearchFilter

SHOWN_TAGS = 3
TAGS_HELP = "only clips with {} of these user tags (separated by ; or ,)"
SHOWN_ROWS = 5  # of a metadata CSV's rows that name no file found


def open_collection(*, with_audio: bool = False, check: bool = True) -> Collection:
    """The configured model and the collection in the configured data directory, which must hold one
    (NoCollection); PaSST is built only `with_audio` (searching, listing, removing and re-projecting never
    run it)."""
    from app.compose import build_retriever, load_settings, store_config
    from app.compose import open_collection as open_configured
    from index.stores import require_store

    settings = load_settings()
    retriever = build_retriever(settings, with_audio=with_audio)  # a device this machine lacks is said first
    require_store(store_config(settings))
    return open_configured(settings, retriever, check=check)


def library_metadata(*, description: str | None = None, tags: str | None = None, fields: str | None = None,
                     csv_file: Path | None = None) -> LibraryMetadata:
    """What each added file is given: the options' metadata and the CSV's rows, all checked first."""
    import json

    from app.schemas.clips import tag_list
    from cli.metadata_csv import LibraryMetadata, MetadataFileError, checked, read_metadata_csv

    try:
        parsed = json.loads(fields) if fields else None
    except ValueError as e:
        raise MetadataFileError(f"--fields is not a JSON object: {e}") from None
    common = checked({"description": description or "", "user_tags": tag_list(tags or ""),
                      "fields": parsed}, "the options")
    return LibraryMetadata(common, read_metadata_csv(csv_file) if csv_file is not None else {})


def add(paths: list[Path], *, recursive: bool = False, progress: bool = True,
        metadata: LibraryMetadata | None = None) -> BuildReport:
    """The ingest worker's loop over files: RETRIEVAL_BATCH_WINDOWS clips' windows per PaSST pass; files
    up to RETRIEVAL_MAX_INDEX_DURATION_S, a long one read and tagged window by window (the bar moves)."""
    from app.compose import build_retriever, index_limits, load_settings, use_index_threads
    from app.compose import open_collection as open_configured
    from cli.metadata_csv import give_uploads
    from index.ingest.builder import index_paths

    settings = load_settings()
    if not any(os.path.lexists(p) for p in paths):  # a typo: said before the models load or a store is made
        raise RetrievalError(f"no such file or folder: {', '.join(map(str, paths))}; nothing was indexed")
    use_index_threads(settings)
    with open_configured(settings, build_retriever(settings)) as collection:
        report = index_paths(collection, paths, recursive=recursive, progress=progress,
                             batch_clips=settings.batch_windows, metadata=metadata,
                             limits=index_limits(settings), decoders=settings.index_decoders)
        if metadata is not None:  # rows of uploads (an export's): their clips take them, no file indexed
            uploads, changed = give_uploads(collection, metadata, set(report.files))
            report.files += sorted(uploads)  # named by the CSV and found
            report.updated += changed
        return report


def stats() -> dict:
    """What the index holds and the model its vectors belong to, whichever model is configured (none is
    loaded)."""
    from app.compose import load_settings, store_config
    from index.stores import open_as_it_is

    with open_as_it_is(store_config(load_settings())) as store:
        return store.stats()


def remove(ids: list[int]) -> tuple[int, list[int]]:
    """How many of the clips `ids` were removed, and the ids that are no clip of the collection."""
    with open_collection() as collection:
        absent = sorted(set(ids) - set(collection.store.records(ids)))
        return collection.remove(ids), absent


def reproject(checkpoint: Path | None, *, progress: bool = True) -> int:
    """Re-project the stored logits with another head, or the configured model's; the store may hold any
    model's vectors."""
    with open_collection(check=False) as collection:
        return collection.reproject(checkpoint, progress=progress)


def backfill_windows(*, progress: bool = True) -> BackfillReport:
    """Windows for the clips stored without them: PaSST runs again on the audio still reachable."""
    from app.compose import index_limits, load_settings, use_index_threads
    from index.ingest.backfill import backfill_windows as backfill

    settings = load_settings()
    use_index_threads(settings)
    with open_collection(with_audio=True) as collection:
        return backfill(collection, progress=progress, limits=index_limits(settings))


def reread_metadata(*, again: bool = False, progress: bool = True) -> RereadReport:
    """The metadata inside the indexed files read again (PaSST is not run), the user's winning."""
    from app.compose import load_settings, store_config
    from index.ingest.reread import reread_metadata as reread
    from index.layout import metadata_ledger

    settings = load_settings()
    ledger = metadata_ledger(settings.data_dir, store_config(settings).name)
    with open_collection() as collection:
        return reread(collection, ledger=ledger, again=again, progress=progress)


def export_metadata(path: Path) -> ExportReport:
    """Every clip's file, description, tags and fields as the CSV `index add --metadata` reads."""
    from app.compose import load_settings, store_config
    from cli.metadata_csv import record_pages, write_metadata_csv
    from index.layout import audio_file
    from index.stores import open_as_it_is

    config = store_config(load_settings())
    with open_as_it_is(config) as store:
        return write_metadata_csv(lambda: record_pages(store.ids().tolist(), store.records),
                                  lambda r: audio_file(config.data_dir, r.location, r.stored_copy), path)


def search(query: str, k: int = 10, *, moments: bool = False, per_clip: int | None = None,
           threshold: float | None = None, mode: SearchMode = "vector", flt: SearchFilter | None = None
           ) -> list[Hit]:
    """The k best clips for the query in `mode` (vector: its meaning; keyword: its words, BM25; hybrid: both,
    fused), or its k best moments (vector only; at most `per_clip` a clip, 3 when None), of the clips
    `flt` lets through."""
    from index.store.records import MomentQuery
    from retrieval.composite import CompositeQuery

    asked = MomentQuery(per_clip or MomentQuery.per_clip, threshold) if moments else None
    with open_collection() as collection:
        return collection.search(CompositeQuery(text=query), k, flt, mode=mode, moments=asked)


def search_filter(*, tag: str | None, tags_any: str | None, tags_all: str | None, tags_none: str | None,
                  fields: str | None, min_duration: float | None, max_duration: float | None
                  ) -> SearchFilter | None:
    """The search's filter from the command line's options (tags as `index add` takes them, separated by
    ';' or ','; fields a JSON object of strings), or None when none is given; BadParameter naming the
    option that is wrong."""
    import json

    from app.schemas.clips import tag_list
    from index.store.records import SearchFilter

    def tags(text: str | None) -> tuple[str, ...]:
        return tuple(tag_list(text or ""))

    try:
        pairs = json.loads(fields) if fields else {}
    except ValueError as e:
        raise typer.BadParameter(f"not a JSON object: {e}", param_hint="--fields") from None
    if not isinstance(pairs, dict) or not all(isinstance(v, str) for v in pairs.values()):
        raise typer.BadParameter('a JSON object of strings, such as \'{"pack": "Drums Vol 1"}\'',
                                 param_hint="--fields")
    if min_duration is not None and max_duration is not None and min_duration > max_duration:
        raise typer.BadParameter("longer than --max-duration", param_hint="--min-duration")
    try:
        flt = SearchFilter(min_duration=min_duration, max_duration=max_duration, tag=tag,
                           tags_any=tags(tags_any), tags_all=tags(tags_all), tags_none=tags(tags_none),
                           fields=tuple(sorted(pairs.items())))
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--fields") from None
    return None if flt.empty else flt


def no_results(*, moments: bool, threshold: float | None, filtered: bool = False,
               mode: str = "vector") -> str:
    """Why a search found nothing: an empty collection, filters no clip passes (by meaning every clip that
    passes them is ranked), words no clip has (by keyword), or moments of clips stored without windows."""
    if moments and threshold is not None:
        return "no moments reach the threshold"
    figures = stats()
    if not figures["clips"]:
        return "no clips in the collection"
    if mode == "keyword":
        among = "that pass the filters" if filtered else f"of the collection's {figures['clips']}"
        return f"nothing found: none of the clips {among} has these words in its name or metadata"
    if filtered:
        return f"nothing found: none of the collection's {figures['clips']} clips passes the filters"
    if moments and not figures["windows"]:
        return (f"none of the collection's {figures['clips']} clips has windows, which moments are found in "
                "(clips stored before windows were kept, or restored from a backup made before backups held "
                "them): run "
                "`retrieval index backfill-windows` (PaSST runs on their audio again)")
    return "nothing found"


def format_hit(rank: int, hit: Hit) -> str:
    tags = ", ".join(f"{t.label} {t.probability:.2f}" for t in hit.record.tags[:SHOWN_TAGS])
    where = f"  at {format_span(hit)}" if hit.segment is not None else ""
    return f"{rank:>3}  {hit.score:.4f}  {one_line(hit.record.name)}  (id {hit.record.id}){where}  {tags}"


def format_moment(rank: int, hit: Hit) -> str:
    name = one_line(hit.record.name)
    return f"{rank:>3}  {name}  (id {hit.record.id})  {format_span(hit)}  {hit.score:.4f}"


def one_line(text: str) -> str:
    """`text` with what does not print (a newline, a tab, a control character) written as its escape, so
    that a result stays one line."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def format_span(hit: Hit) -> str:
    """Start-end in seconds, to the tenth, or to the millisecond for a span under a second."""
    assert hit.segment is not None
    digits = 1 if hit.segment.end - hit.segment.start >= 1 else 3
    return f"{hit.segment.start:.{digits}f}-{hit.segment.end:.{digits}f} s"


def _print_report(report: BuildReport) -> None:
    from index.ingest.builder import shown_path

    rate = report.added / report.seconds if report.seconds else 0.0
    windows = report.windows / report.seconds if report.seconds else 0.0  # what long files are measured by
    typer.echo(f"added {report.added}, skipped {report.skipped} already indexed, failed {len(report.failed)} "
               f"in {report.seconds:.1f} s ({rate:.2f} new clips/s, {windows:.2f} PaSST windows/s)")
    if report.updated:
        typer.echo(f"gave {report.updated} of the clips already indexed their new metadata")
    moved = report.moved - report.retagged_moved  # the retagged ones are said with them
    if moved:
        where = "its file is" if moved == 1 else "their files are"
        typer.echo(f"moved {moved} clip{'s' if moved != 1 else ''} to where {where} now "
                   "(moved or renamed since they were indexed)")
    if report.retagged:
        also = f"; {report.retagged_moved} of them moved or renamed too" if report.retagged_moved else ""
        typer.echo(f"kept {report.retagged} clip{'s' if report.retagged != 1 else ''} of files retagged "
                   f"since they were indexed (the same audio: new metadata, no PaSST{also})")
    if report.replaced:
        typer.echo(f"replaced {report.replaced} clip{'s' if report.replaced != 1 else ''} of files that "
                   "changed since they were indexed")
    if report.copies:
        n = len(report.copies)
        shown = "; ".join(f"{shown_path(path)} = clip {record.id} ({shown_path(record.location)})"
                          for path, record in report.copies[:SHOWN_ROWS])
        typer.echo(f"{n} file{'s are copies' if n != 1 else ' is a copy'} of clips indexed from other files "
                   f"(one clip a sound, which keeps its own file's metadata; what this run gives "
                   f"{'them' if n != 1 else 'it'} is not laid over it): {shown}"
                   f"{f' and {n - SHOWN_ROWS} more' if n > SHOWN_ROWS else ''}")
    if report.folders:
        typer.echo(f"{report.folders} sub-folder{'s' if report.folders != 1 else ''} not walked: add "
                   "--recursive to index what they hold")
    if not report.files and not report.failed:
        typer.secho(f"no audio files found: a folder gives the files named {suffix_list()}", err=True,
                    fg=typer.colors.YELLOW)
    for name, reason in report.failed:
        typer.secho(f"failed: {shown_path(name)}: {shown_path(reason)}", err=True, fg=typer.colors.YELLOW)


def exit_if_unreachable(unreachable: list[tuple[int, str, str]]) -> None:
    """List the clips whose audio could not be reached, and exit with status 1 when there are any."""
    for clip_id, location, why in unreachable:
        typer.secho(f"unreachable: clip {clip_id} ({location}): {why}", err=True, fg=typer.colors.YELLOW)
    if unreachable:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Build and maintain the index of a collection.", no_args_is_help=True)
    app.add_typer(group, name="index")

    description_opt = typer.Option(None, help="a description for every file added")
    tags_opt = typer.Option(None, help="user tags for every file, separated by ';' or ','")
    fields_opt = typer.Option(None, help='named values for every file, a JSON object of strings: '
                                         '\'{"pack": "Drums Vol 1"}\'')
    metadata_opt = typer.Option(None, "--metadata", exists=True, dir_okay=False,
                                help="CSV of per-file metadata: columns file, description, tags (';' or "
                                     "','); other columns are fields")

    @group.command("add")
    def add_cmd(paths: list[Path] = typer.Argument(..., help="audio files and folders"),
                recursive: bool = typer.Option(False, "--recursive", "-r", help="walk sub-folders too"),
                progress: bool = progress_option(),
                description: str | None = description_opt, tags: str | None = tags_opt,
                fields: str | None = fields_opt, metadata: Path | None = metadata_opt) -> None:
        """Index audio files; already indexed content is skipped, so an interrupted run resumes (files
        already indexed take the metadata given). Exit status 1 when some files could not be indexed
        (they are listed)."""
        with exit_on_error():
            meta = library_metadata(description=description, tags=tags, fields=fields, csv_file=metadata)
            try:
                report = add(paths, recursive=recursive, progress=progress, metadata=meta)
            except KeyboardInterrupt:
                typer.secho("interrupted: the clips stored so far stay (a file being tagged left nothing); "
                            "run the same command again to go on", err=True, fg=typer.colors.YELLOW)
                raise typer.Exit(130) from None
        _print_report(report)
        if unused := sorted(set(meta.rows) - set(report.files)):
            rows = "1 row" if len(unused) == 1 else f"{len(unused)} rows"
            more = f" and {len(unused) - SHOWN_ROWS} more" if len(unused) > SHOWN_ROWS else ""
            typer.secho(f"{rows} of {metadata} name files this run did not find: "
                        f"{', '.join(map(str, unused[:SHOWN_ROWS]))}{more}", err=True, fg=typer.colors.YELLOW)
        if report.failed:
            raise typer.Exit(1)

    @group.command("stats")
    def stats_cmd() -> None:
        """Print what the index holds and the model its vectors belong to."""
        with exit_on_error():
            for key, value in stats().items():
                typer.echo(f"{key}: {value}")

    @group.command("remove")
    def remove_cmd(ids: list[int] = typer.Argument(..., help="clip ids (see `retrieval search`)")) -> None:
        """Remove clips by id (and the stored copies of uploaded ones). Exit status 1 when some ids are no
        clip of the collection (the others are removed)."""
        with exit_on_error():
            n, absent = remove(ids)
        typer.echo(f"removed {n} of {len(ids)}" + (f"; not in the collection: {', '.join(map(str, absent))}"
                                                    if absent else ""))
        if absent:
            raise typer.Exit(1)

    @group.command("reproject")
    def reproject_cmd(checkpoint: Path | None = typer.Option(
            None, "--checkpoint", help="trained head; without it, the configured model "
            "(RETRIEVAL_CHECKPOINT, or the zero-shot one)"), progress: bool = progress_option()) -> None:
        """Re-project every clip from the stored PaSST logits (PaSST is not run), with another head or the
        configured model."""
        with exit_on_error():
            n = reproject(checkpoint, progress=progress)
        if checkpoint is None:
            typer.echo(f"re-projected {n} clips with the configured model")
        else:
            typer.echo(f"re-projected {n} clips; search and serve with RETRIEVAL_CHECKPOINT={checkpoint}")

    @group.command("backfill-windows")
    def backfill_cmd(progress: bool = progress_option()) -> None:
        """Store the windows (and waveform peaks) of clips indexed before they were kept, running PaSST again
        on their audio; resumable. Exit status 1 when some clips' audio could not be reached (listed)."""
        with exit_on_error():
            report = backfill_windows(progress=progress)
        typer.echo(f"backfilled the windows of {report.done} clips in {report.seconds:.1f} s; "
                   f"{len(report.unreachable)} could not be reached")
        exit_if_unreachable(report.unreachable)

    @group.command("reread-metadata")
    def reread_cmd(again: bool = typer.Option(False, "--again", help="read every clip's file again, also "
                                                                      "those an earlier run read"),
                   progress: bool = progress_option()) -> None:
        """Read the metadata inside the indexed files (BWF, iXML, INFO, ID3, Vorbis comments) and their UCS
        names again, for clips indexed before it was read; what the user set wins. Clips stored before audio
        fingerprints were kept get theirs (their files decoded), so a later retag keeps them. PaSST is not
        run; resumable. Exit status 1 when some clips' files could not be reached (listed)."""
        with exit_on_error():
            report = reread_metadata(again=again, progress=progress)
        typer.echo(f"read the metadata of {report.read} clips ({report.changed} changed, "
                   f"{report.fingerprinted} fingerprinted, {report.skipped} read before) in "
                   f"{report.seconds:.1f} s; {len(report.unreachable)} could not be reached")
        exit_if_unreachable(report.unreachable)

    @group.command("export-metadata")
    def export_metadata_cmd(path: Path = typer.Argument(..., dir_okay=False,
                                                        help="the CSV file to write (`-`: standard "
                                                             "output, UTF-8, every file absolute)")
                            ) -> None:
        """Write every clip's file, description, tags and fields (what it holds: its file's and yours) as
        the CSV `index add --metadata` reads: edit it in a spreadsheet and give it back to `index add`."""
        with exit_on_error():
            report = export_metadata(path)
        to_stdout = str(path) == "-"
        typer.echo(f"wrote the metadata of {report.rows} clips to {'standard output' if to_stdout else path}",
                   err=to_stdout)
        for file, key in report.left_out:
            typer.secho(f"{file}: its field '{key}' is named as a column of the CSV: left out", err=True,
                        fg=typer.colors.YELLOW)

    @app.command("search")
    def search_cmd(query: str = typer.Argument(..., help="what the sound is like, in words"),
                   k: int = typer.Option(10, "-k", min=1, help="how many results"),
                   moments: bool = typer.Option(False, "--moments",
                                                help="the best moments of the collection instead of clips"),
                   per_clip: int | None = typer.Option(None, "--per-clip", min=1,
                                                       help="with --moments: at most this many per clip "
                                                            "(default 3)"),
                   threshold: float | None = typer.Option(None, "--threshold", min=-1.0, max=1.0,
                                                          help="with --moments: the score a window must "
                                                               "reach (default: each clip's best minus "
                                                               "0.05)"),
                   mode: SearchMode = typer.Option("vector", "--mode", help=(
                       "vector: the query's meaning; keyword: its words in the clips' names, descriptions, "
                       "tags, fields and top AudioSet tags (BM25); hybrid: both rankings fused")),
                   tag: str | None = typer.Option(None, "--tag", help="only clips with this AudioSet tag "
                                                                      "among their top tags"),
                   tags_any: str | None = typer.Option(None, "--tags-any",
                                                       help=TAGS_HELP.format("one")),
                   tags_all: str | None = typer.Option(None, "--tags-all",
                                                       help=TAGS_HELP.format("all")),
                   tags_none: str | None = typer.Option(None, "--tags-none",
                                                        help=TAGS_HELP.format("none")),
                   fields: str | None = typer.Option(None, "--fields", help=(
                       'only clips whose fields have these values, a JSON object: '
                       '\'{"ucs_catid": "DOORWood"}\'')),
                   min_duration: float | None = typer.Option(None, "--min-duration", min=0.0,
                                                             help="only clips at least this long, seconds"),
                   max_duration: float | None = typer.Option(None, "--max-duration", min=0.0,
                                                             help="only clips at most this long, seconds"),
                   export: str | None = typer.Option(None, "--export", metavar="FORMAT", help=(
                       "the results as csv, jsonl (JSON lines), audacity (a label track of their spans) or "
                       "reaper (REAPER's region CSV)")),
                   out: Path | None = typer.Option(None, "--out", dir_okay=False,
                                                   help="with --export: the file to write")) -> None:
        """Search the collection with text: rank, score, name, id, where in the clip (not in keyword mode)
        and top tags; with --moments: rank, clip, start-end and score of each moment. The filters apply
        inside the search. With --export, the results in that format instead (to stdout, or --out FILE)."""
        from index.collection import check_search
        from index.exports import SPANS_ONLY, WRITERS
        from index.exports import export as exported
        from index.store.records import MomentQuery
        from retrieval.composite import CompositeQuery
        from retrieval.durable import write_text_atomically
        from retrieval.pipeline import check_texts
        from retrieval.text import is_blank

        if is_blank(query):
            raise typer.BadParameter("the query is blank: say what the sound is like", param_hint="QUERY")
        try:
            check_texts([query])
            check_search(CompositeQuery(text=query), mode, MomentQuery() if moments else None)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--moments" if moments else "QUERY") from None
        flt = search_filter(tag=tag, tags_any=tags_any, tags_all=tags_all, tags_none=tags_none,
                            fields=fields, min_duration=min_duration, max_duration=max_duration)
        if threshold is not None and not moments:
            raise typer.BadParameter("the threshold is a moment's: add --moments", param_hint="--threshold")
        if per_clip is not None and not moments:
            raise typer.BadParameter("a count of moments: add --moments",
                                     param_hint="--per-clip")
        if export is not None and export not in WRITERS:
            raise typer.BadParameter(f"{export!r} is none of {', '.join(WRITERS)}", param_hint="--export")
        if out is not None and export is None:
            raise typer.BadParameter("--out needs --export FORMAT", param_hint="--out")
        with exit_on_error():
            hits = search(query, k, moments=moments, per_clip=per_clip, threshold=threshold, mode=mode,
                          flt=flt)
        if export is not None:
            text = exported(export, hits)
            written = sum(h.segment is not None for h in hits) if export in SPANS_ONLY else len(hits)
            if out is None:
                typer.echo(text, nl=False)
            else:
                with exit_on_error():  # a file where a folder should be, a read-only folder, a full disk
                    write_text_atomically(out, text)
                typer.echo(f"wrote {written} results to {out}", err=True)
            if written < len(hits):
                typer.echo(f"warning: {len(hits) - written} of {len(hits)} results have no span in their "
                           f"clip, which {export} needs: left out"
                           + (" (keyword hits have none: search in vector or hybrid mode)"
                              if mode == "keyword" else ""), err=True)
            return
        for rank, hit in enumerate(hits, 1):
            typer.echo(format_moment(rank, hit) if moments else format_hit(rank, hit))
        if not hits:
            typer.echo(no_results(moments=moments, threshold=threshold, filtered=flt is not None, mode=mode),
                       err=True)
