"""The `herdrecord` command line: each command parses, calls one library function, renders.

`common` holds the app and what commands share; each other module is one command group and
registers its commands on the app when imported here.
"""

from __future__ import annotations

from herdrecord.cli import (  # noqa: F401  (each registers its commands on `app`)
    budget,
    cameras,
    check,
    embed,
    events,
    export,
    fleet,
    journal,
    query,
    records,
    review,
    serve,
    sql,
    timeline,
)
from herdrecord.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    """Run the CLI; user errors print one line and exit non-zero, without a traceback."""
    app()
