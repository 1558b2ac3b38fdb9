"""Retention tiers and the budget: old detail thinned, nothing a day, link or event needs lost."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from conftest import deliver_day_by_day
from herdrecord.cli import app
from herdrecord.config import Settings
from herdrecord.contract.frames import THINNING_STEPS_S, thinning_levels
from herdrecord.days.budget import measure_budget
from herdrecord.days.derive import read_days, rebuild_days
from herdrecord.days.retention import compact
from herdrecord.linking.run import relink_all
from herdrecord.simulation import Simulation, SimulationConfig, simulate
from herdrecord.store.linktable import current_links
from herdrecord.store.record import Record, create_record, open_record

SHORT = {
    "retain_full_observations_days": 3,
    "thin_observations_to_s": 120,
    "retain_thinned_observations_days": 6,
    "thin_old_observations_to_s": 600,
    "retain_samples_days": 4,
    "retain_keyframes_days": 2,
}
CONFIG = SimulationConfig(animals=8, pens=1, days=10, seed=4, arrival_rate_per_day=0.0)


def test_thinning_levels_keep_the_first_row_per_step_and_the_last() -> None:
    start = np.array([0, 1_000_000_000], dtype=np.int64)  # two tracklets, microseconds
    t = np.concatenate([np.arange(0, 1800, 30), 1_000 + np.arange(0, 50, 10)]) * 1_000_000
    owner = np.concatenate([np.zeros(60, np.int64), np.ones(5, np.int64)])
    shuffled = np.random.default_rng(0).permutation(len(t))
    level = np.empty(len(t), np.int32)
    level[shuffled] = thinning_levels(owner[shuffled], t[shuffled], start)
    first = level[:60]
    for step in THINNING_STEPS_S:
        kept = np.flatnonzero(first >= step)
        # One row per step from the start, and the last row.
        expected = {i for i in range(60) if (i * 30) % step == 0} | {59}
        assert set(kept.tolist()) == expected, step
    assert level[60] == max(THINNING_STEPS_S) and level[-1] == max(THINNING_STEPS_S)


def _build(sim: Simulation, path: Path, settings: Settings) -> Record:
    record = create_record(str(path), settings)
    deliver_day_by_day(record, sim.batches)
    return record


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same barn loaded day by day twice: with short retention tiers, and with none."""
    sim = simulate(CONFIG)
    root = tmp_path_factory.mktemp("retention")
    _build(sim, root / "kept", Settings(keep_versions_days=0, **SHORT))
    _build(sim, root / "full", Settings(retention_enabled=False))
    return root / "kept", root / "full"


@pytest.fixture
def kept(twins: tuple[Path, Path], tmp_path: Path) -> Record:
    shutil.copytree(twins[0], tmp_path / "kept")
    return open_record(str(tmp_path / "kept"), Settings(keep_versions_days=0, **SHORT))


def _newest_midnight(record: Record) -> datetime:
    newest = pc.max(record.read_visible("tracklets", ["start"]).column("start")).as_py()
    return datetime.combine(newest.date(), datetime.min.time(), UTC)


def test_old_observations_are_thinned_by_age_and_recent_ones_kept(twins: tuple[Path, Path]) -> None:
    kept, full = (open_record(str(p)) for p in twins)
    midnight = _newest_midnight(kept)
    for age_days, step in ((0, 30), (3, 120), (6, 600)):
        since = midnight - timedelta(days=age_days + 1)
        until = midnight - timedelta(days=age_days)
        where = f"t >= timestamp '{since:%Y-%m-%d %H:%M:%S}' AND "
        where += f"t < timestamp '{until:%Y-%m-%d %H:%M:%S}'"
        rows_kept = kept.read_visible("observations", ["t"], where=where).num_rows
        rows_full = full.read_visible("observations", ["t"], where=where).num_rows
        assert rows_full > 1000
        # Every 30 s at full rate; a step of N s keeps about 30/N of them (plus last rows).
        assert rows_kept / rows_full == pytest.approx(30 / step, rel=0.35), (age_days, step)


def test_retention_keeps_what_days_links_and_events_need(twins: tuple[Path, Path]) -> None:
    kept, full = (open_record(str(p)) for p in twins)
    # Every tracklet keeps its descriptor, its first and last observation, and its links.
    for name in ("tracklets", "links"):
        assert kept.table(name).count_rows() == full.table(name).count_rows()
    ends_sql = "SELECT device_id, track_id, min(t), max(t), count(*) FROM o GROUP BY ALL"
    ends = {}
    for label, record in (("kept", kept), ("full", full)):
        con = duckdb.connect()
        con.register("o", record.read_visible("observations", ["device_id", "track_id", "t"]))
        ends[label] = {(d, k): (a, b) for d, k, a, b, _ in con.sql(ends_sql).fetchall()}
    assert ends["kept"] == ends["full"]
    # Every keyframe a day chose is still there.
    stored = kept.read_visible("keyframes", ["device_id", "track_id", "t"]).to_pylist()
    present = {(r["device_id"], r["track_id"], r["t"]) for r in stored}
    for day in read_days(kept).to_pylist():
        for ref in day["keyframes"]:
            assert (ref["device_id"], ref["track_id"], ref["t"]) in present
    assert kept.table("keyframes").count_rows() < full.table("keyframes").count_rows() * 0.6
    # Old sample embeddings are gone; linking reads the stored descriptors.
    oldest_sample = pc.min(kept.read_visible("samples", ["t"]).column("t")).as_py()
    assert oldest_sample >= _newest_midnight(kept) - timedelta(days=4)


def test_links_and_days_are_the_same_with_and_without_retention(
    twins: tuple[Path, Path], tmp_path: Path
) -> None:
    copies = []
    for path in twins:
        shutil.copytree(path, tmp_path / path.name)
        copies.append(open_record(str(tmp_path / path.name), Settings(**SHORT)))
    kept, full = copies

    def partition(record: Record) -> set[tuple[str, str, str | None]]:
        links = current_links(record)
        return set(
            zip(
                links.column("device_id").to_pylist(),
                links.column("track_id").to_pylist(),
                links.column("animal_id").to_pylist(),
                strict=True,
            )
        )

    assert partition(kept) == partition(full)  # linked day by day: retention changed nothing
    relink_all(kept)
    relink_all(full)
    assert partition(kept) == partition(full)  # re-linked from what retention kept
    before = {(r["animal_id"], r["day"]): r for r in read_days(full).to_pylist()}
    rebuild_days(kept)
    after = {(r["animal_id"], r["day"]): r for r in read_days(kept).to_pylist()}
    assert set(before) == set(after)
    for key, row in after.items():
        assert row["observed_min"] == pytest.approx(before[key]["observed_min"], rel=1e-4)
        assert row["lying_share"] == pytest.approx(before[key]["lying_share"], abs=0.08)


def test_budget_reports_tables_against_the_budget(kept: Record, twins: tuple[Path, Path]) -> None:
    report = measure_budget(kept)
    full = measure_budget(open_record(str(twins[1])))
    by_name = {t.name: t for t in report.tables}
    assert report.animal_days >= CONFIG.animals * (CONFIG.days - 1)
    assert by_name["observations"].live_bytes > 0 and by_name["samples"].live_bytes > 0
    assert report.measured_mb_per_animal_year < full.measured_mb_per_animal_year * 0.7
    assert report.projected_mb_per_animal_year < report.budget_mb_per_animal_year
    assert report.within_budget


def test_compact_and_budget_commands(kept: Record) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["compact", str(kept.path)])
    assert result.exit_code == 0, result.output
    assert "retention through" in result.output and "compacted" in result.output
    result = runner.invoke(app, ["budget", str(kept.path)])
    assert result.exit_code == 0, result.output
    assert "observations" in result.output and "within" in result.output
    report = compact(kept)  # a second pass has nothing left to remove
    assert (report.retention.observations, report.retention.keyframes) == (0, 0)
