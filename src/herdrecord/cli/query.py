"""The `query` command: a named cohort query, its parameters given as NAME=VALUE."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from herdrecord.cli.common import RecordPath, app, console, errors, open_from_cli
from herdrecord.cli.rows import RowFormat, check_output, write_rows
from herdrecord.errors import InvalidInput
from herdrecord.query.cohorts import NamedQuery, get_query, list_queries, run_query

COLUMN_GAP = 3  # padding and rule rich puts between two columns


@app.command(name="query")
def query_command(
    path: RecordPath,
    name: Annotated[
        str | None,
        typer.Argument(
            help="Named query: lameness, disease, growth ... (--list shows all).",
            show_default=False,
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", "-p", help="A parameter as NAME=VALUE; repeat for more.", show_default=False
        ),
    ] = None,
    output_format: Annotated[
        RowFormat,
        typer.Option(
            "--format",
            help="table (on the terminal), csv, json (one array), jsonl (one object per line) "
            "or parquet (needs --out).",
        ),
    ] = RowFormat.table,
    out: Annotated[
        Path | None,
        typer.Option(
            help="File to write the rows to (csv, json, jsonl, parquet) instead of stdout."
        ),
    ] = None,
    list_queries_: Annotated[
        bool, typer.Option("--list", help="List the named queries, their parameters and defaults.")
    ] = False,
) -> None:
    """Run a named cohort query (a vet's question, answered one row per animal)."""
    if list_queries_:
        console.print(_queries_table([get_query(name)] if name else list_queries()))
        return
    if name is None:
        raise InvalidInput("give a query name, or --list to see the named queries")
    check_output(output_format, out)
    rows = run_query(open_from_cli(path), name, parse_params(param or []))
    count = f"{rows.num_rows:,} animal{'s' if rows.num_rows != 1 else ''}"
    if output_format is RowFormat.table:
        table, left_out = rows_table(rows, console.width)
        console.print(table)
        if left_out:
            count += (
                f"; not shown at this width: {', '.join(left_out)} (--format csv or json gives "
                "every column)"
            )
    else:
        write_rows(rows, output_format, out)
    # The note goes to stderr when rows go to stdout, so that stdout stays pure CSV or JSON.
    notes = console if output_format is RowFormat.table or out is not None else errors
    notes.print(count + (f", written to {escape(str(out))}" if out else ""), highlight=False)


def parse_params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise InvalidInput(f"--param {item!r}: write NAME=VALUE, e.g. --param days=3")
        if key in params:
            raise InvalidInput(f"--param {key} is given twice")
        params[key] = value
    return params


def _queries_table(queries: list[NamedQuery]) -> Table:
    table = Table(
        title="named queries: herdrecord query PATH NAME --param NAME=VALUE", show_lines=True
    )
    table.add_column("query", style="bold", no_wrap=True)
    table.add_column(escape("parameters: type = default [range] {choices}"))
    table.add_column("answers")
    for query in queries:
        params = "\n".join(
            f"[bold]{escape(p.signature())}[/]\n  {escape(p.meaning)}"
            + (" [red](required)[/]" if p.required else "")
            for p in query.params
        )
        table.add_row(query.name, params, escape(query.description))
    return table


def rows_table(rows: pa.Table, width: int) -> tuple[Table, list[str]]:
    """Return the rows as a terminal table of the leading columns that fit in `width`, and
    the names of the columns left out (the queries put the telling columns first)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    cells = [[_cell(value) for value in row.values()] for row in rows.to_pylist()]
    used = 0
    shown = 0
    for i, field in enumerate(rows.schema):
        # Headers wrap at the underscores (a cohort has many columns and a terminal few);
        # values keep their width: a cut number is a wrong number.
        header = field.name.replace("_", " ")
        need = max([len(word) for word in header.split()] + [len(row[i]) for row in cells])
        if shown and used + need + COLUMN_GAP > width:
            break
        used += need + COLUMN_GAP
        shown += 1
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
        table.add_column(escape(header), justify="right" if numeric else "left", width=need)
    for row in cells:
        table.add_row(*row[:shown])
    return table, rows.column_names[shown:]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")  # the views give UTC
    return escape(str(value))
