"""Fleet analytics on Ray Data: every farm's Lance tables read by Ray through lance-ray, one
read task per fragment, each farm pinned to the version it has when the plan is made; each
task sums its own rows and the driver merges the sums.

The same plan runs on a local Ray this process starts or on a cluster: Ray's own
`RAY_ADDRESS` (`auto`, or `ray://head:10001`) says which. It needs the `fleet` extra
(`pip install 'herdrecord[fleet]'`); the rest of herdrecord never imports it.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from datetime import timedelta
from functools import partial

import pyarrow as pa
import pyarrow.compute as pc

from herdrecord.errors import ExtraNotInstalled, InvalidInput
from herdrecord.store.record import Record
from herdrecord.store.schema import BATCH_TABLES

try:
    import lance_ray
    import ray
    from ray.data import DataContext, Dataset
    from ray.util.debug import log_once
except ImportError as error:  # the optional extra is not installed
    raise ExtraNotInstalled("fleet analytics run on Ray Data", "fleet", error.name) from error


def start_engine() -> None:
    """Join the Ray cluster RAY_ADDRESS names, or start a local one; once per process."""
    if not ray.is_initialized():
        # herdrecord reports nothing to anyone; Ray sends usage statistics unless told not to.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # A local cluster on a busy small machine (a farm's PC, CI's two cores) can take
        # longer than Ray's default 20 s to bring up its control store: wait up to 120 s.
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "120")
        with warnings.catch_warnings():
            # Ray starts its processes by fork and exec; lance and lancedb warn at any fork,
            # meant for a forked child that goes on using them, which these do not.
            warnings.filterwarnings("ignore", "lance is not fork-safe", UserWarning)
            warnings.filterwarnings("ignore", "lancedb fork support", RuntimeWarning)
            ray.init(log_to_driver=False, logging_level=logging.ERROR, include_dashboard=False)
    context = DataContext.get_current()
    context.enable_progress_bars = False
    # Ray Data says once that the bars are off, at WARNING; the bars are off on purpose.
    log_once("ray_data_progress_manager_disabled")
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def fleet_scan(records: list[Record], table: str, columns: list[str]) -> Dataset:
    """Return `table`'s `columns` on every farm as one Ray dataset with `farm_id` first.

    Only derived tables (days, animals, events, links, ...): the batch tables hold rows of
    uncommitted batches that only the record's views hide."""
    if table in BATCH_TABLES:
        raise InvalidInput(f"{table} holds uncommitted rows: scan days, animals, events or links")
    start_engine()
    parts = []
    for record in records:
        dataset = record.dataset(table)
        rows = lance_ray.read_lance(
            dataset.uri,
            columns=columns,
            storage_options=record.location.storage_options,
            dataset_options={"version": dataset.version},
        )
        with_farm = partial(_with_farm, record.farm_id)
        parts.append(rows.map_batches(with_farm, batch_format="pyarrow", batch_size=None))
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


def fleet_sums(
    records: list[Record], table: str, columns: list[str], sums: Callable[[pa.Table], pa.Table]
) -> pa.Table:
    """Run `sums` on every block of `fleet_scan(records, table, columns)` in the task that
    read it, and return the blocks' results together (for the driver to merge)."""
    rows = fleet_scan(records, table, columns)
    summed = rows.map_batches(sums, batch_format="pyarrow", batch_size=None)
    blocks = ray.get(summed.to_arrow_refs())
    if not blocks:  # no farm has a row: the shape of the sums from an empty block
        schema = records[0].table(table).schema
        empty = pa.schema([pa.field("farm_id", pa.string())] + [schema.field(c) for c in columns])
        blocks = [sums(empty.empty_table())]
    return pa.concat_tables(blocks)


def weekly_lying_share(records: list[Record]) -> pa.Table:
    """Return the mean lying share per farm and ISO week (`2026-W36`) over every animal-day:
    farm_id, week, animal_days, lying_share."""
    sums = fleet_sums(records, "days", ["day", "lying_share"], _week_sums)
    merged = sums.group_by(["farm_id", "week"]).aggregate(
        [("total", "sum"), ("animal_days", "sum")]
    )
    share = pc.divide(merged["total_sum"], merged["animal_days_sum"])
    result = pa.table(
        {
            "farm_id": merged["farm_id"],
            "week": merged["week"],
            "animal_days": merged["animal_days_sum"],
            "lying_share": share,
        }
    )
    return result.sort_by([("farm_id", "ascending"), ("week", "ascending")])


LAMENESS_COLUMNS = (
    "farm_id",
    "cases",
    "case_days",
    "case_lying_share",
    "controls",
    "control_days",
    "control_lying_share",
)


def lying_before_lameness(records: list[Record], min_score: float = 2, days: int = 3) -> pa.Table:
    """Return, per farm, the mean lying share of lame animals over the `days` days up to and
    including the day of each lameness score of at least `min_score` (events in force; the
    day in UTC), against controls: the farm's animals with no such score, on those same
    calendar days. Means are over animal-days; one row per farm, farms without cases too."""
    if days < 1:
        raise InvalidInput(f"days must be at least 1, got {days}")
    scores = _scores(records, min_score)
    # Small tables (a farm's scores, not its days), sent with every read task.
    windows = _windows(scores, days)
    scored = _flagged(scores, ["farm_id", "animal_id"], "scored")
    dates = _flagged(windows, ["farm_id", "day"], "in_window")
    cohorts = partial(_cohort_sums, windows, scored, dates)
    sums = fleet_sums(records, "days", ["animal_id", "day", "lying_share"], cohorts)
    return _per_farm([r.farm_id for r in records], sums)


def _with_farm(farm_id: str, rows: pa.Table) -> pa.Table:
    return rows.add_column(0, "farm_id", pa.array([farm_id] * rows.num_rows, pa.string()))


def _flagged(rows: pa.Table, keys: list[str], flag: str) -> pa.Table:
    """The distinct `keys` of `rows`, each with `flag` true (the right side of a left join)."""
    distinct = rows.select(keys).group_by(keys).aggregate([])
    return distinct.append_column(flag, pa.repeat(pa.scalar(True), distinct.num_rows))


def _week_sums(rows: pa.Table) -> pa.Table:
    week = pc.strftime(pc.cast(rows["day"], pa.timestamp("s")), format="%G-W%V")
    share = pc.cast(rows["lying_share"], pa.float64())
    table = pa.table({"farm_id": rows["farm_id"], "week": week, "share": share})
    summed = table.group_by(["farm_id", "week"]).aggregate([("share", "sum"), ("share", "count")])
    return summed.rename_columns(["farm_id", "week", "total", "animal_days"])


def _scores(records: list[Record], min_score: float) -> pa.Table:
    """Lameness scores in force of at least `min_score`: farm_id, animal_id, scored_on."""
    columns = ["event_id", "animal_id", "kind", "at", "value", "supersedes", "retracted"]
    events = fleet_sums(records, "events", columns, lambda rows: rows)  # a farm's events: few
    # In force as the `events` view has it: not a retraction, and corrected by no later row.
    replaced = events.filter(pc.is_valid(events["supersedes"])).select(["farm_id", "supersedes"])
    replaced = replaced.rename_columns(["farm_id", "event_id"])
    events = events.join(replaced, ["farm_id", "event_id"], join_type="left anti")
    events = events.filter(pc.invert(pc.fill_null(events["retracted"], False)))
    lame = pc.and_(
        pc.equal(events["kind"], "lameness"), pc.greater_equal(events["value"], min_score)
    )
    events = events.filter(pc.fill_null(lame, False))
    scored_on = pc.cast(events["at"], pa.date32())  # the UTC day: `at` is stored in UTC
    return events.select(["farm_id", "animal_id"]).append_column("scored_on", scored_on)


def _windows(scores: pa.Table, days: int) -> pa.Table:
    """The animal-days each score looks back over: farm_id, animal_id, day, case."""
    rows = {
        (farm, animal, scored_on - timedelta(days=back))
        for farm, animal, scored_on in zip(
            scores["farm_id"].to_pylist(),
            scores["animal_id"].to_pylist(),
            scores["scored_on"].to_pylist(),
            strict=True,
        )
        for back in range(days)
    }
    farms, animals, window_days = zip(*sorted(rows), strict=True) if rows else ((), (), ())
    return pa.table(
        {
            "farm_id": pa.array(farms, pa.string()),
            "animal_id": pa.array(animals, pa.string()),
            "day": pa.array(window_days, pa.date32()),
            "case": pa.repeat(pa.scalar(True), len(rows)),
        }
    )


def _cohort_sums(windows: pa.Table, scored: pa.Table, dates: pa.Table, rows: pa.Table) -> pa.Table:
    """Sum one block's lying share per farm, role (case or control) and animal."""
    rows = rows.join(windows, ["farm_id", "animal_id", "day"], join_type="left outer")
    rows = rows.join(scored, ["farm_id", "animal_id"], join_type="left outer")
    rows = rows.join(dates, ["farm_id", "day"], join_type="left outer")
    case = pc.fill_null(rows["case"], False)
    control = pc.and_(
        pc.invert(pc.fill_null(rows["scored"], False)), pc.fill_null(rows["in_window"], False)
    )
    role = pc.if_else(case, "case", pc.if_else(control, "control", pa.scalar(None, pa.string())))
    table = pa.table(
        {
            "farm_id": rows["farm_id"],
            "role": role,
            "animal_id": rows["animal_id"],
            "share": pc.cast(rows["lying_share"], pa.float64()),
        }
    ).filter(pc.is_valid(role))
    summed = table.group_by(["farm_id", "role", "animal_id"]).aggregate(
        [("share", "sum"), ("share", "count")]
    )
    return summed.rename_columns(["farm_id", "role", "animal_id", "total", "animal_days"])


def _per_farm(farms: list[str], sums: pa.Table) -> pa.Table:
    """Merge the blocks' sums into one row per farm (LAMENESS_COLUMNS)."""
    per_animal = sums.group_by(["farm_id", "role", "animal_id"]).aggregate(
        [("total", "sum"), ("animal_days", "sum")]
    )
    per_role = per_animal.group_by(["farm_id", "role"]).aggregate(
        [("animal_id", "count"), ("total_sum", "sum"), ("animal_days_sum", "sum")]
    )
    found = {(row["farm_id"], row["role"]): row for row in per_role.to_pylist()}
    columns: dict[str, list[object]] = {name: [] for name in LAMENESS_COLUMNS}
    for farm in farms:
        columns["farm_id"].append(farm)
        for role, plural in (("case", "cases"), ("control", "controls")):
            row = found.get((farm, role))
            animal_days = row["animal_days_sum_sum"] if row else 0
            columns[plural].append(row["animal_id_count"] if row else 0)
            columns[f"{role}_days"].append(animal_days)
            columns[f"{role}_lying_share"].append(
                row["total_sum_sum"] / animal_days if row else None
            )
    types = {"farm_id": pa.string(), "case_lying_share": pa.float64()}
    types["control_lying_share"] = pa.float64()
    return pa.table(
        {name: pa.array(values, types.get(name, pa.int64())) for name, values in columns.items()}
    )
