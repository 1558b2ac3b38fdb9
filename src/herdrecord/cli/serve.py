"""Commands of the HTTP service: `serve`, and `keys add|list|revoke` for its API keys."""

from __future__ import annotations

import getpass
import logging
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from herdrecord.api.keys import ROLES, ApiKey, add_key, list_keys, revoke_key
from herdrecord.cli.common import RecordPath, app, console, env_settings, errors, open_from_cli
from herdrecord.cli.rows import (
    ListFormat,
    ListFormatOption,
    ListingTable,
    add_id_column,
    listing_rows,
    print_listing,
)

keys_app = typer.Typer(
    help="API keys of the HTTP service: add (shown once), list, revoke.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


def _open_when_serving(url: str) -> None:
    """Open `url` in the user's browser once the service answers there (on a thread)."""
    import threading
    import time
    import urllib.request
    import webbrowser

    def wait_then_open() -> None:
        for _ in range(300):
            try:
                urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=1)
            except OSError:
                time.sleep(0.1)
                continue
            webbrowser.open(url)
            return

    threading.Thread(target=wait_then_open, daemon=True).start()


@app.command()
def serve(
    path: RecordPath,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    log_level: Annotated[
        str, typer.Option(help="uvicorn's log level: critical, error, warning, info, debug.")
    ] = "info",
    open_pages: Annotated[
        bool, typer.Option("--open", help="Open the pages in a web browser once serving.")
    ] = False,
) -> None:
    """Serve the record over HTTP (OpenAPI at /docs); Ctrl-C stops it after in-flight writes."""
    import uvicorn

    from herdrecord.server import create_app

    if log_level not in ("critical", "error", "warning", "info", "debug"):
        raise typer.BadParameter(f"{log_level!r} is not a log level", param_hint="--log-level")
    settings = env_settings().model_copy(update={"record": str(path)})
    record = open_from_cli(path)  # a missing or unmigrated record fails here, in one line
    if not list_keys(record):
        errors.print(
            "[yellow]warning:[/] the record has no API keys yet; make one with "
            f"`herdrecord keys add {path} NAME --role admin`"
        )
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    console.print(f"serving {path} on http://{host}:{port} (OpenAPI: /docs)")
    if open_pages:
        _open_when_serving(f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/")
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        # Slow or idle clients hold nothing for long: idle connections close after the
        # keep-alive, a request's headers may not pass 16 KiB, at most so many connections
        # at once (more get 503); the body's own time limit is the service's
        # (HERDRECORD_API_BODY_TIMEOUT_S).
        http=_header_timeout(settings.api_header_timeout_s),
        timeout_keep_alive=settings.api_keep_alive_s,
        limit_concurrency=settings.api_max_connections,
        h11_max_incomplete_event_size=16 * 1024,
        server_header=False,
    )


def _header_timeout(seconds: float) -> type:
    """Return uvicorn's h11 protocol with a time limit on each request's headers (uvicorn
    has none: a client that never ends its headers would hold the connection for ever)."""
    import asyncio

    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeout(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(seconds, self._headers_late)

        def _headers_late(self) -> None:
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()  # no whole request yet: the client is too slow

    return HeaderTimeout


@keys_app.command("add")
def keys_add(
    path: RecordPath,
    name: Annotated[str, typer.Argument(help="Who the key is for (a device, person, program).")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")],
    by: Annotated[str | None, typer.Option(help="Who makes it (default: your login).")] = None,
    device: Annotated[
        list[str] | None,
        typer.Option(
            help="An edge key's device, the only one it may upload for; repeat for several. "
            "An edge key with none may upload for any device."
        ),
    ] = None,
) -> None:
    """Make a key; it is printed once, here, and stored only as a hash."""
    key, text = add_key(open_from_cli(path), name, role, by or getpass.getuser(), device or ())
    if key.role == "edge" and not key.devices:
        errors.print(
            "[yellow]warning:[/] this edge key may upload for any device; bind it with "
            "--device DEVICE_ID"
        )
    # The key alone on stdout, so that KEY=$(herdrecord keys add ...) holds just the key.
    errors.print(
        f"made {_article(key.role)} {key.role} key for [bold]{escape(key.name)}[/] "
        f"(id {key.key_id}); it is shown once, keep it now",
        highlight=False,
    )
    typer.echo(text)


def _article(word: str) -> str:
    return "an" if word[:1] in ("a", "e", "i", "o", "u") else "a"


KEY_COLUMNS = ("name", "role", "devices", "key_id", "created_at", "created_by", "revoked_at")


@keys_app.command("list")
def keys_list(path: RecordPath, output_format: ListFormatOption = ListFormat.table) -> None:
    """List every key ever made (never the keys themselves); an edge key with no devices
    may upload for any."""
    keys = list_keys(open_from_cli(path))
    rows = listing_rows(KEY_COLUMNS, [vars(key) | {"devices": list(key.devices)} for key in keys])
    print_listing(rows, output_format, lambda: console.print(_keys_table(keys)))


def _keys_table(keys: list[ApiKey]) -> Table:
    table = ListingTable()
    add_id_column(table, "name")
    for column in ("role", "devices"):
        table.add_column(column)
    add_id_column(table, "key id")
    for column in ("created", "by", "revoked"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            key.name,
            key.role,
            ", ".join(key.devices)
            if key.devices
            else ("any (unbound)" if key.role == "edge" else ""),
            key.key_id,
            f"{key.created_at:%Y-%m-%d %H:%M}",
            key.created_by,
            "" if key.revoked_at is None else f"{key.revoked_at:%Y-%m-%d %H:%M}",
        )
    return table


@keys_app.command("revoke")
def keys_revoke(
    path: RecordPath,
    name: Annotated[str, typer.Argument(help="Whose key to revoke.")],
) -> None:
    """Revoke a principal's key; a running service refuses it within a second."""
    key = revoke_key(open_from_cli(path), name)
    console.print(f"revoked {key.name}'s {key.role} key (id {key.key_id})")
