"""The `herdrecord` command line: parse arguments, call one library function, render."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from herdrecord.cli_console import CliConsole
from herdrecord.config import Settings
from herdrecord.errors import HerdrecordError, InvalidInput
from herdrecord.ingest import BatchOutcome, IngestReport, ingest
from herdrecord.intake import Candidate, batch_files
from herdrecord.journal import Journal, open_journal
from herdrecord.replay import FileIntake, replay_journal
from herdrecord.store import Record, create_record, migrate_record, open_record


class _Commands(typer.core.TyperGroup):
    """Command group that turns herdrecord's errors into one readable line and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except HerdrecordError as exc:
            errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None


app = typer.Typer(
    cls=_Commands,
    name="herdrecord",
    help="A longitudinal per-animal visual record database for livestock.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Wrapped to a terminal's width; never wrapped or cut in a pipe, a file or a log.
console = CliConsole()
errors = CliConsole(stderr=True)

# A str, not a Path: a Path would fold s3://bucket/herd into s3:/bucket/herd.
RecordPath = Annotated[
    str,
    typer.Argument(help="The record: a directory, or s3://bucket/prefix.", show_default=False),
]


def _settings() -> Settings:
    return Settings()


def open_from_cli(path: str | Path) -> Record:
    """Open the record at PATH with settings from the environment; say what a recovery
    after a power cut did, and what to re-send."""
    record = open_record(str(path), _settings())
    if record.recovery is not None:
        errors.print(f"[yellow]{escape(record.recovery.describe())}[/]")
    return record


@app.command()
def init(
    path: RecordPath,
    farm: Annotated[str, typer.Option(help="Farm id the record belongs to.")] = "farm-a",
    embedder: Annotated[
        str, typer.Option(help="Name of the embedder of the vectors.")
    ] = "dinov3-vits16",
    dim: Annotated[
        int, typer.Option(help="Dimension of the embedder's vectors.", min=1, max=8192)
    ] = 384,
    weights: Annotated[
        Path | None,
        typer.Option(
            help="Pin the record to the model in this directory (its dimension and the "
            "SHA-256 of its weights)."
        ),
    ] = None,
) -> None:
    """Create a new, empty record at PATH."""
    identity = None
    if weights is not None:
        from herdrecord.embed import Embedder

        with console.status(f"loading the model in {weights}"):
            identity = Embedder.load(weights, embedder, "cpu").identity
        dim = identity.dim
    record = create_record(
        str(path), _settings(), farm_id=farm, embedder_name=embedder, embedder_dim=dim
    )
    if identity is not None and identity.weights_sha256:
        record.pin_embedder(identity.weights_sha256)
    console.print(
        f"created record [bold]{record.uri}[/] (schema {record.schema_version}, "
        f"embedder {record.embedder.name}/{record.embedder.dim}, farm {record.farm_id})"
    )


@app.command()
def migrate(path: RecordPath) -> None:
    """Apply pending schema migrations to the record at PATH."""
    applied = migrate_record(str(path), _settings())
    if not applied:
        console.print(f"{path}: up to date, nothing to migrate")
    for migration in applied:
        console.print(f"applied migration {migration.version:04d} {migration.name}")


@app.command(name="ingest")
def ingest_command(
    path: RecordPath,
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Batch files (.json, .json.gz, .parquet), directories of them, or - for one "
            "JSON batch on standard input.",
            show_default=False,
        ),
    ],
) -> None:
    """Ingest edge batches into the record: atomic, idempotent, one writer at a time."""
    record = open_from_cli(path)
    report = ingest_with_progress(record, sources)
    _print_report(report)
    _link_after_ingest(record)
    if report.count("rejected"):
        raise typer.Exit(code=1)


def _link_after_ingest(record: Record) -> None:
    from herdrecord.cli_review import print_link_report
    from herdrecord.linking import link_pending

    with console.status("linking tracklets to animals"):
        report = link_pending(record)
    if report.tracklets:
        print_link_report(report)


def ingest_with_progress(record: Record, sources: list[str]) -> IngestReport:
    """Ingest the given sources with a progress bar, through the record's intake journal
    (replaying what an earlier run left there first, syncing to disk last); return the
    report."""
    use_stdin = sources == ["-"]
    if "-" in sources and not use_stdin:
        raise InvalidInput("- (standard input) cannot be mixed with files")
    files = [] if use_stdin else batch_files([Path(s) for s in sources])
    if not use_stdin and not files:
        raise InvalidInput(f"no batch files (.json, .json.gz, .parquet) in {' '.join(sources)}")
    journal = open_journal(record)
    try:
        if journal is not None:
            replay_with_report(record, journal)
        report = _ingest_journalled(record, journal, files, use_stdin)
        if journal is not None:
            journal.make_durable()
    finally:
        if journal is not None:
            journal.close()
    return report


def replay_with_report(record: Record, journal: Journal) -> None:
    """Replay the uploads an earlier run journalled but did not make durable; say so."""
    replayed = replay_journal(record, journal)
    if replayed.entries:
        console.print(
            f"replayed {replayed.entries} journalled uploads an earlier run left: "
            f"{replayed.count('accepted')} batches stored again, "
            f"{replayed.count('duplicate')} already stored, {replayed.count('rejected')} rejected"
        )


def _ingest_journalled(
    record: Record, journal: Journal | None, files: list[Path], use_stdin: bool
) -> IngestReport:
    max_bytes = record.settings.max_batch_bytes
    intake = FileIntake(journal, max_bytes)
    with _progress() as progress:
        task = progress.add_task("ingesting", total=len(files) or 1)
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}

        def on_outcome(outcome: BatchOutcome) -> None:
            intake.outcome(outcome)
            counts[outcome.status] += 1
            progress.update(task, description=_counts_text(counts))

        def candidates() -> Iterator[Candidate]:
            if use_stdin:
                yield from intake.stdin(sys.stdin.buffer.read(max_bytes + 1))
                progress.advance(task)
                return
            yield from intake.files(files, lambda: progress.advance(task))

        return ingest(record, candidates(), on_outcome)


def _counts_text(counts: dict[str, int]) -> str:
    return (
        f"[green]{counts['accepted']} accepted[/] · {counts['duplicate']} duplicate · "
        f"[red]{counts['rejected']} rejected[/]"
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=False,
    )


def _print_report(report: IngestReport) -> None:
    for outcome in report.outcomes:
        if outcome.status == "rejected":
            label = outcome.batch_id or outcome.source
            errors.print(f"[red]rejected[/] {label} ({outcome.source}):")
            for problem in outcome.problems:
                errors.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"{report.count('accepted')} accepted, {report.count('duplicate')} duplicate, "
        f"{report.count('rejected')} rejected; {report.rows_written:,} rows written in "
        f"{report.seconds:.1f} s"
        + (f"; compacted {', '.join(report.compacted)}" if report.compacted else "")
    )


@app.command(name="farm")
def farm_command(
    path: RecordPath,
    set_to: Annotated[
        str | None,
        typer.Option(
            "--set",
            help="Name the record's farm (for a record made with the default id); refused "
            "while it holds another farm's batches.",
        ),
    ] = None,
) -> None:
    """Show the farm the record belongs to (batches for another farm are refused), or set it."""
    record = open_from_cli(path)
    if set_to is not None:
        record.set_farm_id(set_to)
    console.print(f"{escape(record.uri)}: farm {escape(record.farm_id)}", soft_wrap=True)


@app.command()
def info(path: RecordPath) -> None:
    """Print what the record holds: tables, rows, bytes on disk, versions, fragments."""
    record = open_from_cli(path)
    table = Table(title=f"{record.uri}")
    for column in ("table", "rows", "bytes on disk", "version", "fragments"):
        table.add_column(column, justify="left" if column == "table" else "right")
    total_rows = total_bytes = 0
    for entry in record.table_info():
        table.add_row(
            entry.name,
            f"{entry.rows:,}",
            _human_bytes(entry.bytes_on_disk),
            str(entry.version),
            str(entry.fragments),
        )
        total_rows += entry.rows
        total_bytes += entry.bytes_on_disk
    table.add_section()
    table.add_row("total", f"{total_rows:,}", _human_bytes(total_bytes), "", "")
    console.print(
        f"schema {record.schema_version} · embedder {record.embedder.name}/"
        f"{record.embedder.dim} ({record.embedder.metric}) · farm {record.farm_id} · "
        f"{len(record.behaviours)} behaviours"
    )
    console.print(table)


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Directory to write batches/ and truth/ into.")],
    animals: Annotated[int, typer.Option(help="Animals present at the start.", min=1)] = 40,
    pens: Annotated[int, typer.Option(help="Pens (one edge device each).", min=1)] = 4,
    days: Annotated[int, typer.Option(help="Days to simulate.", min=1)] = 21,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same herd.")] = 0,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")] = "2026-09-01",
    breeding: Annotated[bool, typer.Option(help="Add a breeding herd of sows.")] = False,
    keyframes: Annotated[bool, typer.Option(help="Render JPEG keyframes.")] = True,
) -> None:
    """Simulate a seeded herd and write it as edge batches plus a separate ground truth."""
    from herdrecord.simulate import SimulationConfig, write_simulation
    from herdrecord.simulate import simulate as run_simulation

    config = SimulationConfig(
        animals=animals,
        pens=pens,
        days=days,
        seed=seed,
        start=_parse_date(start),
        breeding=breeding,
        keyframes=keyframes,
    )
    with console.status(f"simulating {animals} animals in {pens} pens for {days} days"):
        simulation = run_simulation(config)
        files = write_simulation(simulation, out)
    console.print(
        f"wrote {len(simulation.batches)} batches to {files.batches_dir} and the ground truth "
        f"to {files.truth_dir}"
    )


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--start {text!r}: expected a date as YYYY-MM-DD") from None


@app.command()
def demo(
    path: Annotated[Path, typer.Argument(help="Directory for the demo record.")] = Path(
        "herd-demo"
    ),
    animals: Annotated[int, typer.Option(help="Animals in the demo herd.", min=1)] = 24,
    days: Annotated[int, typer.Option(help="Days to simulate.", min=1)] = 14,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Simulate a small herd, ingest it into a fresh record with progress, and show it."""
    from herdrecord.demo import prepare_demo, write_farm_events
    from herdrecord.eventcsv import import_events_csv

    with console.status(f"simulating {animals} animals for {days} days"):
        prepared = prepare_demo(path, animals=animals, days=days, seed=seed, settings=_settings())
    console.print(
        f"simulated {prepared.batches} edge batches into {prepared.batches_dir}; "
        f"ground truth in {prepared.truth_dir}"
    )
    report = ingest_with_progress(prepared.record, [str(prepared.batches_dir)])
    _print_report(report)
    _link_after_ingest(prepared.record)
    farm_csv, left_out = write_farm_events(
        prepared.truth_dir, prepared.record, prepared.batches_dir.parent / "farm-events.csv"
    )
    stored = import_events_csv(prepared.record, farm_csv)
    console.print(
        f"imported {len(stored)} farm events (scale weights, lameness scores, diagnoses, "
        f"treatments, moves, sales) from {farm_csv}, matched by ear tag"
        + (f"; {left_out} of animals whose tag was never read left out" if left_out else "")
    )
    info(prepared.record.uri)
    console.print(
        f"next: [bold]herdrecord timeline {prepared.record.path} P00001 --plot p1.png[/], "
        f"[bold]herdrecord budget {prepared.record.path}[/], or ingest the same batches "
        "again to see them reported as duplicates; to serve it over HTTP: "
        f"[bold]herdrecord keys add {prepared.record.path} me --role admin[/] then "
        f"[bold]herdrecord serve {prepared.record.path}[/]"
    )


def main() -> None:
    """Run the CLI; user errors print one line and exit non-zero, without a traceback."""
    app()


# The identity commands live in their own module and register themselves on `app`.
from herdrecord import (  # noqa: E402, F401
    cli_budget,
    cli_cameras,
    cli_check,
    cli_embed,
    cli_events,
    cli_export,
    cli_fleet,
    cli_journal,
    cli_query,
    cli_review,
    cli_serve,
    cli_sql,
    cli_timeline,
)
