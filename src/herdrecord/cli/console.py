"""The CLI's consoles: wrapped to the terminal's width on a terminal, never wrapped or cut
when written to a pipe, a file or a log (scripts grep the messages; a path must copy whole)."""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.text import Text

# The width a console reports when it writes to no terminal: wide enough that no table is
# cut and no column left out. Nothing the CLI prints fills the width (no rule, no panel,
# no expanded table), so no line grows to it.
PIPE_WIDTH = 1_000_000

# What a note, a name or a code may carry that would steer the terminal rather than show:
# C0/C1 controls but newline and tab (ESC starts colour, title and cursor sequences), and
# Unicode's bidirectional overrides and isolates (a right-to-left override reverses text).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """Return `text` with terminal control characters written as visible escapes (\\x1b)."""
    return _CONTROLS.sub(lambda m: ascii(m.group(0))[1:-1], text)


class CliConsole(Console):
    """A rich Console that decides at each print whether it writes to a terminal.

    On a terminal it behaves as rich does (the terminal's width, or COLUMNS). Otherwise
    (a pipe, a file, a CI log, the test runner's captured stream, which replaces
    sys.stdout when a command is invoked) it soft-wraps every message and reports a width
    of PIPE_WIDTH, whatever COLUMNS says (a width given in code still holds).
    TTY_COMPATIBLE=1 or 0 (rich's own switch) says whether to treat the stream as a
    terminal; FORCE_COLOR still colours a log but does not make it wrap.
    """

    def __init__(self, *, stderr: bool = False, width: int | None = None, **kwargs: Any) -> None:
        super().__init__(stderr=stderr, width=width, **kwargs)  # sets soft_wrap, below
        # rich freezes COLUMNS when the console is made (at import); read it at each print
        # instead, so that only a width given here is fixed.
        self._width = width

    def render_str(self, text: str, **kwargs: Any) -> Text:
        """Every string printed, table cells included, shows its control characters escaped:
        a note in `event list` or a value in `sql` cannot move the cursor or recolour."""
        return super().render_str(escape_controls(text), **kwargs)

    @property
    def writes_to_terminal(self) -> bool:
        """Whether the stream written to now is a terminal (asked each time: it may change)."""
        if self.is_jupyter:
            return True  # rich's own width rules hold there
        tty_compatible = self._environ.get("TTY_COMPATIBLE", "")
        if tty_compatible in ("0", "1"):
            return tty_compatible == "1"
        isatty = getattr(self.file, "isatty", None)
        try:
            return bool(isatty is not None and isatty())
        except ValueError:  # a closed stream
            return False

    @property
    def size(self) -> ConsoleDimensions:
        dimensions = super().size
        if self.writes_to_terminal or self._width is not None:  # a width set in code holds
            return dimensions
        return ConsoleDimensions(PIPE_WIDTH, dimensions.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]

    @property
    def soft_wrap(self) -> bool:
        """The default for print's soft_wrap: always on when not writing to a terminal."""
        return self._fixed_soft_wrap or not self.writes_to_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        self._fixed_soft_wrap = value
