"""Run the command line: `python -m herdrecord`."""

from herdrecord.cli import main

main()
