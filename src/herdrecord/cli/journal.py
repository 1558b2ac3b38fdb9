"""`herdrecord journal` (what the intake journal holds) and `herdrecord push` (the outbox)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from herdrecord.cli.common import (
    RecordPath,
    app,
    console,
    env_settings,
    errors,
    open_from_cli,
    progress,
)
from herdrecord.cli.intake import print_replay
from herdrecord.cli.rows import (
    ListFormat,
    ListFormatOption,
    ListingTable,
    listing_rows,
    notes_console,
    print_listing,
)
from herdrecord.errors import InvalidInput, PushFailed
from herdrecord.ingest.journal import Journal, JournalEntry, open_journal
from herdrecord.ingest.push import Pushed, PushPolicy, PushReport, Retry, push_outbox
from herdrecord.ingest.replay import replay_journal
from herdrecord.store.record import Record

SHOWN_ENTRIES = 50


@app.command(name="journal")
def journal_command(
    path: RecordPath,
    replay: Annotated[
        bool,
        typer.Option(
            "--replay",
            help="Replay now what is not known durable (ingest and serve do it on start).",
        ),
    ] = False,
    output_format: ListFormatOption = ListFormat.table,
) -> None:
    """Show the record's intake journal: uploads not yet durable, waiting to be pushed,
    refused by the central service (a table shows the latest 50; other formats all)."""
    record = open_from_cli(path)
    journal = _journal_of(record)
    try:
        if replay:
            print_replay(replay_journal(record, journal), notes_console(output_format))
            journal.make_durable()
        summary = journal.summary()
        entries = journal.entries()
    finally:
        journal.close()
    rows = listing_rows(
        JOURNAL_COLUMNS, [vars(e) | {"batch_ids": list(e.batch_ids)} for e in entries]
    )
    print_listing(
        rows,
        output_format,
        lambda: console.print(_entries_table(entries)) if entries else None,
        f"{len(entries)} uploads in the journal ({summary.size_bytes / 1e6:.1f} MB): "
        f"{summary.received} not yet committed, {summary.unsynced} not yet synced, "
        f"{summary.waiting} waiting to be pushed, {summary.refused} refused, "
        f"{summary.failed} failed on replay"
        + ("" if record.settings.edge_outbox else " · outbox off (HERDRECORD_EDGE_OUTBOX)"),
    )


JOURNAL_COLUMNS = (
    "entry_id",
    "received_at",
    "source",
    "batch_ids",
    "state",
    "durable",
    "push",
    "push_message",
    "message",
    "size_bytes",
)


def _entries_table(entries: list[JournalEntry]) -> Table:
    table = ListingTable("entry", "received", "source", "batches", "state", "push", "message")
    for entry in entries[-SHOWN_ENTRIES:]:
        table.add_row(
            str(entry.entry_id),
            f"{entry.received_at:%Y-%m-%d %H:%M:%S}",
            escape(entry.source),
            escape(", ".join(entry.batch_ids)) or "?",
            entry.state + ("" if entry.durable or entry.state != "committed" else ", unsynced"),
            entry.push or "",
            escape(entry.push_message or entry.message or ""),
        )
    if len(entries) > SHOWN_ENTRIES:
        table.caption = f"the latest {SHOWN_ENTRIES} of {len(entries)}"
    return table


@app.command(name="push")
def push_command(
    path: RecordPath,
    to: Annotated[
        str,
        typer.Option(
            "--to", help="The central herdrecord service, e.g. https://central.example:8000."
        ),
    ],
    key: Annotated[
        str | None,
        typer.Option(
            help="An API key of role edge on the central service (default: HERDRECORD_PUSH_KEY)."
        ),
    ] = None,
    attempts: Annotated[
        int | None,
        typer.Option(help="Tries per upload (default: HERDRECORD_PUSH_ATTEMPTS).", min=1),
    ] = None,
    deadline: Annotated[
        float | None,
        typer.Option(help="Seconds to keep retrying (default: HERDRECORD_PUSH_DEADLINE_S).", min=0),
    ] = None,
    retry_refused: Annotated[
        bool,
        typer.Option(
            "--retry-refused", help="Send again the uploads the central service refused before."
        ),
    ] = False,
) -> None:
    """Send the outbox (uploads committed here, not yet pushed) to a central service, in
    order, with retries; each is stored there once however often it is sent. Exit 1 if any
    was refused or is left for the next push."""
    settings = env_settings()
    secret = key or (settings.push_key.get_secret_value() if settings.push_key else "")
    if not secret:
        raise InvalidInput(
            "no key to push with: give --key or set HERDRECORD_PUSH_KEY (a key of role edge "
            "on the central service)"
        )
    policy = PushPolicy.from_settings(settings)
    if attempts is not None:
        policy = dataclasses.replace(policy, attempts=attempts)
    if deadline is not None:
        policy = dataclasses.replace(policy, deadline_s=deadline)
    record = open_from_cli(path)
    journal = _journal_of(record)
    try:
        report = _push_with_progress(journal, to, secret, policy, retry_refused)
    finally:
        journal.close()
    _print_push_report(report, record)
    if report.count("refused") or report.stopped:
        raise typer.Exit(code=1)


def _journal_of(record: Record) -> Journal:
    journal = open_journal(record)
    if journal is None:
        raise InvalidInput(f"{record.uri} keeps no intake journal: its commits are durable")
    return journal


def _push_with_progress(
    journal: Journal, url: str, key: str, policy: PushPolicy, refused_too: bool
) -> PushReport:
    with progress() as bar:
        task = bar.add_task("pushing", total=len(journal.waiting(refused_too)) or 1)
        counts = {"pushed": 0, "refused": 0}

        def on_pushed(pushed: Pushed) -> None:
            counts[pushed.status] += 1
            bar.update(
                task,
                advance=1,
                description=f"[green]{counts['pushed']} pushed[/] · "
                f"[red]{counts['refused']} refused[/]",
            )

        def on_retry(retry: Retry) -> None:
            bar.update(
                task,
                description=f"[yellow]try {retry.attempt + 1} in {retry.wait_s:.1f} s[/]: "
                f"{escape(retry.reason)}",
            )

        try:
            return push_outbox(
                journal,
                url,
                key,
                policy,
                refused_too=refused_too,
                on_pushed=on_pushed,
                on_retry=on_retry,
            )
        except PushFailed:
            bar.update(task, visible=False)  # the error's one line says what happened
            raise


def _print_push_report(report: PushReport, record: Record) -> None:
    for outcome in report.outcomes:
        if outcome.status == "refused":
            label = ", ".join(outcome.batch_ids) or outcome.source
            errors.print(
                f"[red]refused[/] {escape(label)} ({outcome.http_status}): "
                f"{escape(outcome.message)}",
                soft_wrap=True,
            )
    pushed = [o for o in report.outcomes if o.status == "pushed"]
    console.print(
        f"{len(pushed)} uploads pushed ({sum(o.accepted for o in pushed)} batches stored, "
        f"{sum(o.duplicate for o in pushed)} already there), {report.count('refused')} refused, "
        f"{report.left} waiting, in {report.seconds:.1f} s"
    )
    if report.stopped:
        errors.print(f"[red]error:[/] {escape(report.stopped)}", soft_wrap=True)
    elif not report.outcomes and not record.settings.edge_outbox:
        console.print(
            "nothing to push: the outbox is off, so ingest keeps nothing for pushing "
            "(set HERDRECORD_EDGE_OUTBOX=true)"
        )
