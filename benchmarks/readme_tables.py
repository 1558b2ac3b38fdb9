"""Write one benchmark's table into benchmarks/README.md, between its markers."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


def replace_section(name: str, lines: list[str], heading: str) -> None:
    """Put `lines` between `<!-- name:start -->` and `<!-- name:end -->` in the README,
    adding `heading` and the markers at its end the first time."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = README.read_text()
    if start not in text:
        text += f"\n{heading}\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    README.write_text(head + "\n".join([start, *lines, end]) + tail)
