"""Commands that bring batches in: ingest (files, folders, standard input), and the simulator
that makes a barn's batches, alone (simulate) or through a whole demo record (demo)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from herdrecord.cli.common import RecordPath, app, console, env_settings, open_from_cli
from herdrecord.cli.intake import ingest_with_progress
from herdrecord.cli.records import info
from herdrecord.errors import InvalidInput


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
    result = ingest_with_progress(open_from_cli(path), sources)
    if result.count("rejected"):
        raise typer.Exit(code=1)


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
    from herdrecord.simulation import SimulationConfig, write_simulation
    from herdrecord.simulation import simulate as run_simulation

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
    from herdrecord.events.csv_import import import_events_csv
    from herdrecord.simulation.demo import prepare_demo, write_farm_events

    with console.status(f"simulating {animals} animals for {days} days"):
        prepared = prepare_demo(
            path, animals=animals, days=days, seed=seed, settings=env_settings()
        )
    console.print(
        f"simulated {prepared.batches} edge batches into {prepared.batches_dir}; "
        f"ground truth in {prepared.truth_dir}"
    )
    ingest_with_progress(prepared.record, [str(prepared.batches_dir)])
    farm_csv, left_out = write_farm_events(
        prepared.truth_dir, prepared.record, prepared.batches_dir.parent / "farm-events.csv"
    )
    stored = import_events_csv(prepared.record, farm_csv)
    console.print(
        f"imported {len(stored.event_ids)} farm events (scale weights, lameness scores, diagnoses, "
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
