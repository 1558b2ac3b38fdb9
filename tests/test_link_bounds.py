"""A crowded pen-day (thousands of one-sample tracklets of nobody in particular, each end with
dozens of plausible successors) links at a bounded cost in peak memory. At 2,000 this
catches any step that pairs every tracklet with every other one across a descriptor (an
(n, n, d) block: GBs), not one (n, n) matrix of floats (32 MB here): the time and pair caps in
docs/linking.md bound those."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FLOOD = 2_000
# What linking the flood may add to the process's peak RSS. Measured: +70 MB for 500, +173 MB
# for 2,000 (2026-12-04); one (n, n, 384) float32 step would need 6 GB, an (n, n) float64 one
# per cue a few tens of MB each.
PEAK_GROWTH_LIMIT_MB = 400

CHILD = f"""
import json, sys, tempfile
from herdrecord.config import Settings
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.linking.run import link_pending
from herdrecord.simulation.hostile import pen_day_flood
from herdrecord.store.record import create_record

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024

record = create_record(sys.argv[1], Settings())
batches = pen_day_flood({FLOOD})
ingest(record, [parse_json(json.dumps(b).encode(), b["batch_id"]) for b in batches])
del batches
try:
    open("/proc/self/clear_refs", "w").write("5")  # the peak so far is ingest's: reset it
except OSError:
    pass
before = status("VmRSS:")
report = link_pending(record)
peak = status("VmHWM:")
print(json.dumps({{"before": before, "peak": peak, "tracklets": report.tracklets}}))
"""


def test_a_crowded_pen_day_links_within_a_bounded_peak_memory(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "herd")],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["tracklets"] > 0.95 * FLOOD  # every tracklet got a decision
    grown = measured["peak"] - measured["before"]
    print(f"linking {FLOOD:,} tracklets: peak RSS +{grown:.0f} MB")
    assert grown < PEAK_GROWTH_LIMIT_MB, f"linking {FLOOD:,} tracklets added {grown:.0f} MB"
