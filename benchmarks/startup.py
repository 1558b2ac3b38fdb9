"""Start-up: how long `herdrecord --help`, `--version` and the read commands take on the demo
record, side by side with the floor every such command stands on (a Python that imports Lance
and reads one table of the same record).

Each command runs as its own process (what a person at a terminal waits for), `--runs` times
after one warm-up; the median is reported. Writes `results/startup.json` and the table in
`README.md`. Run: `.venv/bin/python benchmarks/startup.py` (it makes a demo record in a temp
directory first, about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from readme_tables import replace_section

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "startup.json"
HERDRECORD = str(Path(sys.executable).with_name("herdrecord"))
TARGET_S = {"--help": 0.3, "--version": 0.3}  # issue 23; read commands: 1 s
READ_TARGET_S = 1.0


def _time(argv: list[str], runs: int) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    subprocess.run(argv, capture_output=True, env=env, check=False)  # warm the file cache
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, env=env, check=False)
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    return statistics.median(seconds)


def main() -> None:
    """Make a demo record, time the commands and the floor, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="herdrecord-startup-"))
    try:
        subprocess.run(
            [HERDRECORD, "demo", str(work / "demo")],
            capture_output=True,
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        record = str(work / "demo" / "record")
        floor = [
            sys.executable,
            "-c",
            f"import lance; lance.dataset({str(Path(record) / 'animals.lance')!r}).to_table()",
        ]
        rows = [("python + import lance + read animals (the floor)", _time(floor, args.runs))]
        commands = [
            ["--help"],
            ["--version"],
            ["info", record],
            ["animals", record],
            ["pens", record],
            ["history", record, "P00001"],
            ["days", record],
            ["timeline", record, "P00001"],
            ["event", "list", record],
            ["budget", record],
            ["review", "list", record],
        ]
        for command in commands:
            rows.append((f"herdrecord {' '.join(command).replace(record, 'RECORD')}",
                         _time([HERDRECORD, *command], args.runs)))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    floor_s = rows[0][1]
    result = {
        "benchmark": "startup",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "runs": args.runs,
        "seconds": {name: round(s, 3) for name, s in rows},
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"Each command its own process on the demo record, median of {args.runs} after a "
        f"warm-up; {result['when']}, {os.cpu_count()} CPUs.",
        "",
        "| command | seconds | ratio to the floor | target s |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds in rows:
        quick = name.removeprefix("herdrecord ")
        target = TARGET_S.get(quick, READ_TARGET_S if name.startswith("herdrecord") else None)
        lines.append(
            f"| `{name}` | {seconds:.2f} | {seconds / floor_s:.1f} | "
            f"{'' if target is None else f'{target:g}'} |"
        )
    replace_section("startup", lines, "## Start-up (`benchmarks/startup.py`)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
