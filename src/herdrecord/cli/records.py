"""Commands on the record itself: init, migrate, farm, info, pens (ingest, simulate and demo
are `ingest`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from herdrecord.cli.common import (
    RecordPath,
    app,
    console,
    env_settings,
    human_bytes,
    open_from_cli,
)
from herdrecord.cli.rows import ListFormat, ListFormatOption, listing_rows, print_listing
from herdrecord.ingest.journal import journal_bytes
from herdrecord.lookup.pens import PenSummary, pen_summaries
from herdrecord.store.record import INDEX_FILE, create_record, migrate_record


@app.command()
def init(
    path: RecordPath,
    farm: Annotated[
        str | None,
        typer.Option(
            help="Farm id the record belongs to: batches of other farms are refused. Without "
            "it the record takes the farm of its first accepted batch."
        ),
    ] = None,
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
        from herdrecord.embedding.model import Embedder

        with console.status(f"loading the model in {weights}"):
            identity = Embedder.load(weights, embedder, "cpu").identity
        dim = identity.dim
    record = create_record(
        str(path), env_settings(), farm_id=farm, embedder_name=embedder, embedder_dim=dim
    )
    if identity is not None and identity.weights_sha256:
        record.pin_embedder(identity.weights_sha256)
    console.print(
        f"created record [bold]{record.uri}[/] (schema {record.schema_version}, "
        f"embedder {record.embedder.name}/{record.embedder.dim}, "
        + ("farm: from its first batch)" if record.farm_from_first_batch else f"farm {farm})")
    )


@app.command()
def migrate(path: RecordPath) -> None:
    """Apply pending schema migrations to the record at PATH."""
    applied = migrate_record(str(path), env_settings())
    if not applied:
        console.print(f"{path}: up to date, nothing to migrate")
    for migration in applied:
        console.print(f"applied migration {migration.version:04d} {migration.name}")


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
    output_format: ListFormatOption = ListFormat.table,
) -> None:
    """Show the farm the record belongs to (batches for another farm are refused), or set it."""
    record = open_from_cli(path)
    if set_to is not None:
        record.set_farm_id(set_to)
    farm_id = None if record.farm_from_first_batch else record.farm_id
    rows = listing_rows(("record", "farm_id"), [{"record": record.uri, "farm_id": farm_id}])
    named = f"farm {escape(record.farm_id)}" if farm_id else "no farm yet: its first batch names it"
    print_listing(
        rows,
        output_format,
        lambda: console.print(f"{escape(record.uri)}: {named}", soft_wrap=True),
    )


INFO_COLUMNS = ("table", "rows", "bytes_on_disk", "version", "fragments")


@app.command()
def info(path: RecordPath, output_format: ListFormatOption = ListFormat.table) -> None:
    """Print what the record holds: tables, rows, bytes on disk, versions, fragments."""
    record = open_from_cli(path)
    entries: list[dict[str, Any]] = [
        {
            "table": entry.name,
            "rows": entry.rows,
            "bytes_on_disk": entry.bytes_on_disk,
            "version": entry.version,
            "fragments": entry.fragments,
        }
        for entry in record.table_info()
    ]
    # Beside the tables: the intake journal and the re-ID pool's FAISS index (a cache).
    for label, size in (
        ("(intake journal)", journal_bytes(record)),
        ("(re-ID index)", record.location.size_under(INDEX_FILE)),
    ):
        if size:
            entries.append(dict.fromkeys(INFO_COLUMNS) | {"table": label, "bytes_on_disk": size})
    farm = "farm from its first batch" if record.farm_from_first_batch else f"farm {record.farm_id}"
    about = (
        f"schema {record.schema_version} · embedder {record.embedder.name}/"
        f"{record.embedder.dim} ({record.embedder.metric}) · {farm} · "
        f"{len(record.behaviours)} behaviours"
    )
    print_listing(
        listing_rows(INFO_COLUMNS, entries),
        output_format,
        lambda: console.print(_info_table(record.uri, entries)),
        about,
    )


def _info_table(uri: str, entries: list[dict[str, Any]]) -> Table:
    table = Table(title=uri)
    for column in ("table", "rows", "bytes on disk", "version", "fragments"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for entry in entries:
        table.add_row(
            entry["table"],
            "" if entry["rows"] is None else f"{entry['rows']:,}",
            human_bytes(entry["bytes_on_disk"]),
            "" if entry["version"] is None else str(entry["version"]),
            "" if entry["fragments"] is None else str(entry["fragments"]),
        )
    table.add_section()
    total_rows = sum(e["rows"] or 0 for e in entries)
    total_bytes = sum(e["bytes_on_disk"] for e in entries)
    table.add_row("total", f"{total_rows:,}", human_bytes(total_bytes), "", "")
    return table


PEN_COLUMNS = (
    "pen_id",
    "animals",
    "devices",
    "cameras",
    "tracklets",
    "last_seen",
    "last_upload",
)


@app.command()
def pens(path: RecordPath, output_format: ListFormatOption = ListFormat.table) -> None:
    """List the pens: head count (active animals), devices and cameras, last upload."""
    found = pen_summaries(open_from_cli(path))
    rows = listing_rows(
        PEN_COLUMNS,
        [vars(p) | {"devices": list(p.devices), "cameras": list(p.cameras)} for p in found],
    )
    print_listing(rows, output_format, lambda: console.print(_pens_table(found)))


def _pens_table(found: list[PenSummary]) -> Table:
    table = Table(title=f"{len(found)} pens")
    for column in ("pen", "animals", "devices", "cameras", "tracklets"):
        table.add_column(column, justify="right" if column in ("animals", "tracklets") else "left")
    table.add_column("last seen (UTC)")
    table.add_column("last upload (UTC)")
    for pen in found:
        table.add_row(
            pen.pen_id,
            str(pen.animals),
            ", ".join(pen.devices),
            ", ".join(pen.cameras),
            f"{pen.tracklets:,}",
            _utc(pen.last_seen),
            _utc(pen.last_upload),
        )
    return table


def _utc(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}"
