"""SIGKILL at random moments of `herdrecord link`, `compact` and `migrate`: after each kill the
record, once the writer lock has been taken again, checks clean and holds every acknowledged
batch once; running the command again finishes the work as an uninterrupted run does.

A child counts as working once it holds the writer lock (the lock file names its pid); it is
killed after a random part (a seeded draw) of the time the same work took here on a copy. Two
tests kill a child at one chosen moment instead: windows too narrow to hit at random.
"""

from __future__ import annotations

import fcntl
import json
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import lancedb
import pyarrow as pa
import pytest

from herdrecord.config import Settings
from herdrecord.days.derive import DAYS_OWED_FILE, rebuild_days
from herdrecord.days.retention import compact
from herdrecord.errors import MigrationRequired
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.linking.run import link_pending
from herdrecord.ops.check import check_record
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.linktable import current_links
from herdrecord.store.location import LOCK_FILE
from herdrecord.store.migrations import MIGRATIONS, MigrationContext, applied, load_migration
from herdrecord.store.record import (
    INDEX_FILE,
    LINK_RUN_FILE,
    Record,
    create_record,
    migrate_record,
    open_record,
    recover_interrupted,
)
from herdrecord.store.schema import (
    BATCH_TABLES,
    DEFAULT_BEHAVIOURS,
    migrations_schema,
    table_schemas,
)

HERDRECORD = [sys.executable, "-m", "herdrecord"]
SEED = 20261122  # the kill moments are drawn from this seed
ROUNDS = 3
BARN = SimulationConfig(
    animals=6, pens=1, days=3, seed=5, arrival_rate_per_day=0.0, obs_interval_s=300.0
)
SHED = SimulationConfig(
    animals=4, pens=1, days=1, seed=5, arrival_rate_per_day=0.0, obs_interval_s=300.0
)
# Vectors and pictures are left out of row comparisons: the rows' keys and values decide.
UNCOMPARED = frozenset({"embedding", "descriptor", "jpeg", "keyframes", "behaviour_min"})


@pytest.fixture(autouse=True)
def _child_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The children (and `Settings()` here) read the same settings from the environment."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HERDRECORD_LOCK_TIMEOUT_S", "60")


def _ingest_barn(
    record: Record, barn: SimulationConfig = BARN, *, one_write_per_batch: bool = False
) -> list[str]:
    """Ingest a simulated barn without linking; return the acknowledged batch ids."""
    batches = simulate(barn).batches
    candidates = [parse_json(json.dumps(b).encode(), str(b["batch_id"])) for b in batches]
    groups = [[c] for c in candidates] if one_write_per_batch else [candidates]
    acknowledged = []
    for group in groups:
        report = ingest(record, group)
        acknowledged += [o.batch_id for o in report.outcomes if o.status == "accepted"]
    assert len(acknowledged) == len(batches)
    return [str(b) for b in acknowledged]


@dataclass(frozen=True)
class _Child:
    """A `herdrecord` child process and the file its standard error goes to."""

    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, args: list[str], log: Path) -> _Child:
        with log.open("wb") as errors:
            process = subprocess.Popen(
                [*HERDRECORD, *args], stdout=subprocess.DEVNULL, stderr=errors
            )
        return cls(process, log)

    def holds_lock(self, path: Path) -> bool:
        """Whether it is alive and the lock file of the record at `path` names it."""
        try:
            named = (path / LOCK_FILE).read_text()
        except FileNotFoundError:
            return False
        return self.process.poll() is None and named.startswith(f"pid {self.process.pid} ")

    def said(self) -> str:
        return self.log.read_text()[-3000:]


class _LockWaiter:
    """This process waiting in the kernel's queue for a record's writer lock (a flock on its
    lock file, as the writer takes it), so that it has the lock the moment a killed holder
    frees it, before the waiting children's next try (they poll)."""

    def __init__(self, path: Path) -> None:
        self._handle = (path / LOCK_FILE).open("a+")
        self._taking = threading.Thread(
            target=fcntl.flock, args=(self._handle.fileno(), fcntl.LOCK_EX)
        )
        self._taking.start()

    def hold(self) -> None:
        self._taking.join(timeout=60)
        assert not self._taking.is_alive(), "the writer lock was never freed"

    def release(self) -> None:
        """Give the lock back, once taken (again and again: a no-op)."""
        if self._handle.closed:
            return
        self.hold()
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()


def _kill_rounds(
    args: list[str], path: Path, work_s: float, seed: int, recover: Callable[[], object]
) -> Iterator[bool]:
    """Start ROUNDS children running `herdrecord ARGS` on the record at `path` and let them in
    one at a time: each is SIGKILLed a random part of `work_s` after it took the writer lock.
    After each kill, hold the lock, call `recover` (what a writer does on taking it) and yield
    whether the child was still working.

    The children load together (loading is most of a child's life) while this process holds
    the lock, and wait for it.
    """
    rng = random.Random(seed)
    lock = _LockWaiter(path)
    lock.hold()
    children = [_Child.start(args, path.parent / f"{args[0]}-{i}.log") for i in range(ROUNDS)]
    try:
        for _ in range(ROUNDS):
            lock.release()
            worker = _worker(children, path)
            time.sleep(rng.uniform(0.0, work_s))
            lock = _LockWaiter(path)
            working = worker is not None and worker.process.poll() is None
            if worker is not None:
                worker.process.send_signal(signal.SIGKILL)
                worker.process.wait()
                assert working or worker.process.returncode == 0, worker.said()
            lock.hold()
            recover()
            yield working
    finally:
        for child in children:
            child.process.kill()
            child.process.wait()
        lock.release()


def _worker(children: list[_Child], path: Path) -> _Child | None:
    """Return the child that takes the writer lock (None if all ended first)."""
    deadline = time.monotonic() + 60
    while (worker := next((c for c in children if c.holds_lock(path)), None)) is None:
        for child in children:
            assert child.process.poll() in (None, 0, -signal.SIGKILL), child.said()
        if all(child.process.poll() is not None for child in children):
            return None  # the last one ran to the end before it was seen working
        assert time.monotonic() < deadline, "no child took the writer lock"
        time.sleep(0.002)
    return worker


def _recover(path: Path) -> Callable[[], object]:
    """Return what a writer does on taking the lock: remove the rows of an interrupted write."""
    return lambda: recover_interrupted(open_record(str(path), Settings()))


def _problems(record: Record) -> list[str]:
    return [p.code for p in check_record(record).problems]


def _assert_every_batch_once(record: Record, acknowledged: list[str]) -> None:
    ledger = record.table("batches").to_lance().to_table(columns=["batch_id"])
    assert sorted(ledger.column("batch_id").to_pylist()) == sorted(acknowledged)
    # check_record compares each batch's tracklets with its ledger row and finds doubles.


def _rows(record: Record, name: str) -> Counter[str]:
    """Return a table's rows (less vectors and pictures) as a multiset."""
    dataset = record.table(name).to_lance()
    columns = [f.name for f in dataset.schema if f.name not in UNCOMPARED]
    return Counter(
        repr(sorted(row.items())) for row in dataset.to_table(columns=columns).to_pylist()
    )


def _days(record: Record) -> list[tuple[object, ...]]:
    columns = ["animal_id", "day", "pen_id", "n_tracklets", "observed_min", "lying_min"]
    rows = record.table("days").to_lance().to_table(columns=columns).to_pylist()
    return sorted(tuple(row.values()) for row in rows)


def _rederived_days(path: Path, scratch: Path) -> list[tuple[object, ...]]:
    """Return the days of a copy of the record, derived afresh from its current links."""
    shutil.copytree(path, scratch)
    copy = open_record(str(scratch), Settings())
    rebuild_days(copy)
    return _days(copy)


def _tracklet_keys(record: Record) -> list[tuple[str, str]]:
    rows = record.read_visible("tracklets", ["device_id", "track_id"])
    return sorted(
        zip(rows.column("device_id").to_pylist(), rows.column("track_id").to_pylist(), strict=True)
    )


def test_linking_killed_at_random_moments_then_rerun_links_every_tracklet_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "herd"
    acknowledged = _ingest_barn(create_record(str(path), Settings()))
    reference = tmp_path / "reference"
    shutil.copytree(path, reference)
    started = time.perf_counter()
    link_pending(open_record(str(reference), Settings()))
    work_s = time.perf_counter() - started
    killed = 0
    with closing(_kill_rounds(["link", str(path)], path, work_s, SEED, _recover(path))) as rounds:
        for working in rounds:
            killed += working
            record = open_record(str(path), Settings())
            # The re-ID index caches the pool: a kill between the two leaves it stale, and the
            # next link run rebuilds it (so does check --repair).
            assert set(_problems(record)) <= {"stale_index"}, _problems(record)
            _assert_every_batch_once(record, acknowledged)
    assert killed, "no child was killed while it worked"
    record = open_record(str(path), Settings())
    link_pending(record)
    assert check_record(record).ok, check_record(record).problems
    _assert_every_batch_once(record, acknowledged)
    links = current_links(record)
    keys = list(
        zip(
            links.column("device_id").to_pylist(),
            links.column("track_id").to_pylist(),
            strict=True,
        )
    )
    assert sorted(keys) == _tracklet_keys(record)  # one current link each, none left out
    # A run killed after its new animals and pool exemplars, before its links, is undone when
    # the lock is next taken: every tracklet gets the animal the uninterrupted run gave it.
    assert _animal_of(record) == _animal_of(open_record(str(reference), Settings()))
    assert not (path / DAYS_OWED_FILE).exists()
    assert _days(record) == _rederived_days(path, tmp_path / "rederived")


# A link run killed the moment its links are written, before it re-derives their days.
LINKS_WRITTEN_THEN_KILLED = """
import os, signal, sys
from herdrecord.linking import run as linking
from herdrecord.config import Settings
from herdrecord.store.record import open_record
write = linking._write
def killed_after_writing(*args):
    write(*args)
    os.kill(os.getpid(), signal.SIGKILL)
linking._write = killed_after_writing
linking.link_pending(open_record(sys.argv[1], Settings()))
"""


def test_a_link_run_killed_after_its_links_has_its_days_derived_by_the_next(
    tmp_path: Path,
) -> None:
    path = tmp_path / "herd"
    record = create_record(str(path), Settings())
    acknowledged = _ingest_barn(record, SHED)
    child = subprocess.run(
        [sys.executable, "-c", LINKS_WRITTEN_THEN_KILLED, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert len(current_links(record)) == len(_tracklet_keys(record))  # the links are there
    assert record.table("days").count_rows() == 0  # and none of their days
    report = link_pending(record)
    assert report.tracklets == 0  # nothing is left to link ...
    assert report.days.rows > 0  # ... yet the days are derived
    assert check_record(record).ok
    _assert_every_batch_once(record, acknowledged)
    assert _days(record) == _rederived_days(path, tmp_path / "rederived")


# A link run killed the moment its pool is written, before its links.
POOL_WRITTEN_THEN_KILLED = """
import os, signal, sys
from herdrecord.linking import run as linking
from herdrecord.config import Settings
from herdrecord.store.record import open_record
write_pool = linking.write_pool
def killed_after_the_pool(*args):
    write_pool(*args)
    os.kill(os.getpid(), signal.SIGKILL)
linking.write_pool = killed_after_the_pool
linking.link_pending(open_record(sys.argv[1], Settings()))
"""


def _animal_of(record: Record) -> dict[tuple[str, str], object]:
    links = current_links(record).to_pylist()
    return {(row["device_id"], row["track_id"]): row["animal_id"] for row in links}


def test_a_link_run_killed_before_its_links_is_undone_and_redone_alike(
    tmp_path: Path,
) -> None:
    path = tmp_path / "herd"
    record = create_record(str(path), Settings())
    acknowledged = _ingest_barn(record, SHED)
    reference = tmp_path / "reference"
    shutil.copytree(path, reference)
    link_pending(open_record(str(reference), Settings()))
    pool_version = record.table("pool").version
    child = subprocess.run(
        [sys.executable, "-c", POOL_WRITTEN_THEN_KILLED, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert record.table("animals").count_rows() > 0  # its new animals and pool are there
    assert record.table("pool").version > pool_version
    with record.writer():  # taking the lock undoes them
        assert record.table("animals").count_rows() == 0
        assert record.table("pool").count_rows() == 0
        assert not (path / LINK_RUN_FILE).exists() and not (path / INDEX_FILE).exists()
    link_pending(record)
    assert check_record(record).ok, check_record(record).problems
    _assert_every_batch_once(record, acknowledged)
    redone = open_record(str(reference), Settings())
    assert _animal_of(record) == _animal_of(redone)  # as if it had never been killed
    assert record.table("pool").count_rows() == redone.table("pool").count_rows()


# A merge killed once its links have moved, before its pool, status and days.
MERGE_KILLED_AFTER_ITS_LINKS = """
import os, signal, sys
from herdrecord.linking import review
from herdrecord.config import Settings
from herdrecord.store.record import open_record
def killed(*args):
    os.kill(os.getpid(), signal.SIGKILL)
review.write_pool = killed
review.merge(open_record(sys.argv[1], Settings()), sys.argv[2], sys.argv[3], "test")
"""


def test_a_merge_killed_after_its_links_has_its_days_derived_and_can_be_run_again(
    tmp_path: Path,
) -> None:
    from herdrecord.linking.review import TrackletRef, merge, split

    path = tmp_path / "herd"
    record = create_record(str(path), Settings())
    acknowledged = _ingest_barn(record, SHED)
    link_pending(record)
    links = current_links(record).to_pylist()
    keep = str(Counter(row["animal_id"] for row in links).most_common(1)[0][0])
    one = next(row for row in links if row["animal_id"] == keep)
    # A tracklet of `keep` split off as a new animal: the two are never seen together.
    gone = split(record, keep, [TrackletRef(one["device_id"], one["track_id"])], "test").animals[1]
    child = subprocess.run(
        [sys.executable, "-c", MERGE_KILLED_AFTER_ITS_LINKS, str(path), keep, gone],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert (path / DAYS_OWED_FILE).exists()  # the days its links changed are owed
    link_pending(record)  # the next writer derives them
    assert not (path / DAYS_OWED_FILE).exists()
    assert _days(record) == _rederived_days(path, tmp_path / "rederived")
    merge(record, keep, gone, "test")  # run again, it finishes
    animals = {r["animal_id"]: r for r in record.table("animals").to_lance().to_table().to_pylist()}
    assert animals[gone]["status"] == "merged" and animals[gone]["merged_into"] == keep
    assert check_record(record).ok, check_record(record).problems
    _assert_every_batch_once(record, acknowledged)
    assert _days(record) == _rederived_days(path, tmp_path / "rederived-2")


def test_compaction_killed_at_random_moments_keeps_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One fragment per batch, no versions kept, and retention tiers short enough to thin a
    # three-day barn: compaction deletes, rewrites and cleans up.
    for name, value in {
        "COMPACT_AFTER_FRAGMENTS": "10000",
        "KEEP_VERSIONS_DAYS": "0",
        "RETENTION_ENABLED": "false",
        "RETAIN_FULL_OBSERVATIONS_DAYS": "1",
        "RETAIN_THINNED_OBSERVATIONS_DAYS": "1",
        "RETAIN_SAMPLES_DAYS": "1",
        "RETAIN_KEYFRAMES_DAYS": "1",
    }.items():
        monkeypatch.setenv(f"HERDRECORD_{name}", value)
    path = tmp_path / "herd"
    record = create_record(str(path), Settings())
    acknowledged = _ingest_barn(record, one_write_per_batch=True)
    link_pending(record)
    data_tables = [*BATCH_TABLES, "batches", "links", "days", "animals", "pool"]
    before = {name: _rows(record, name) for name in data_tables}
    reference = tmp_path / "reference"
    shutil.copytree(path, reference)
    started = time.perf_counter()
    compact(open_record(str(reference), Settings()))
    work_s = time.perf_counter() - started
    expected = {name: _rows(open_record(str(reference), Settings()), name) for name in data_tables}
    assert expected["observations"].total() < before["observations"].total()  # it thins
    killed = 0
    with closing(
        _kill_rounds(["compact", str(path)], path, work_s, SEED + 1, _recover(path))
    ) as rounds:
        for working in rounds:
            killed += working
            record = open_record(str(path), Settings())
            assert _problems(record) == []
            _assert_every_batch_once(record, acknowledged)
            for name in data_tables:
                rows = _rows(record, name)
                # Whatever the kill interrupted, every row the finished compaction keeps is there,
                # and nothing the record did not hold.
                assert not expected[name] - rows, name
                assert not rows - before[name], name
    assert killed, "no child was killed while it worked"
    record = open_record(str(path), Settings())
    compact(record)
    assert check_record(record).ok, check_record(record).problems
    _assert_every_batch_once(record, acknowledged)
    assert {name: _rows(record, name) for name in data_tables} == expected
    for name in BATCH_TABLES:
        assert len(record.table(name).to_lance().get_fragments()) == 1, name


def _schema_1_record(path: Path) -> None:
    """Make an empty record as herdrecord's schema 1 left it."""
    path.mkdir()
    db = lancedb.connect(str(path))
    ctx = MigrationContext(
        db,
        "dinov3-vits16",
        384,
        "cosine",
        DEFAULT_BEHAVIOURS,
        "farm-a",
        datetime.now(UTC),
        "0.0",
    )
    db.create_table("migrations", schema=migrations_schema())
    load_migration(MIGRATIONS[0]).apply(ctx)
    db.open_table("migrations").add(
        pa.table(
            {
                "version": [1],
                "name": [MIGRATIONS[0]],
                "applied_at": [datetime.now(UTC)],
                "herdrecord_version": ["0.0"],
            },
            schema=migrations_schema(),
        )
    )
    metadata = db.open_table("metadata")
    row = pa.table({"key": ["schema_version"], "value": [json.dumps(1)]}, metadata.schema)
    metadata.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(
        row
    )


def _add_barn_as_schema_1(path: Path, scratch: Path) -> list[str]:
    """Add the simulated barn's batches to a schema-1 record: today's rows less the columns
    later schemas added; return the batch ids."""
    today = create_record(str(scratch), Settings())
    acknowledged = _ingest_barn(today)
    db = lancedb.connect(str(path))
    for name in ("batches", *BATCH_TABLES):
        old = db.open_table(name)
        old.add(today.table(name).to_arrow().select(old.schema.names).cast(old.schema))
    return acknowledged


def _migration_state(path: Path) -> tuple[int, list[int]]:
    """Return the schema version a record is stamped with and the versions its log lists."""
    db = lancedb.connect(str(path))
    rows = db.open_table("metadata").to_arrow().to_pylist()
    stamped = {row["key"]: json.loads(row["value"]) for row in rows}["schema_version"]
    return int(stamped), [m.version for m in applied(db)]


def _stored_counts(path: Path) -> dict[str, int]:
    db = lancedb.connect(str(path))
    return {name: db.open_table(name).count_rows() for name in ("batches", *BATCH_TABLES)}


def test_migration_killed_at_random_moments_then_rerun_reaches_the_latest_schema(
    tmp_path: Path,
) -> None:
    path = tmp_path / "herd"
    _schema_1_record(path)
    acknowledged = _add_barn_as_schema_1(path, tmp_path / "today")
    counts = _stored_counts(path)
    reference = tmp_path / "reference"
    shutil.copytree(path, reference)
    started = time.perf_counter()
    migrate_record(str(reference), Settings())
    work_s = time.perf_counter() - started
    killed = 0
    with closing(
        _kill_rounds(["migrate", str(path)], path, work_s, SEED + 2, lambda: None)
    ) as rounds:
        for working in rounds:
            killed += working
            assert _stored_counts(path) == counts  # nothing lost or doubled, whatever was cut
            stamped, log = _migration_state(path)
            # Stamped with the last logged version, or one before it when killed in between.
            assert log == list(range(1, len(log) + 1)) and log[-1] - 1 <= stamped <= log[-1]
            try:
                record = open_record(str(path), Settings())
            except MigrationRequired:
                continue  # cut short: the record asks for `herdrecord migrate`, as it should
            assert _problems(record) == []
            _assert_every_batch_once(record, acknowledged)
    assert killed, "no child was killed while it worked"
    migrate_record(str(path), Settings())
    latest = len(MIGRATIONS)
    assert _migration_state(path) == (latest, list(range(1, latest + 1)))
    record = open_record(str(path), Settings())
    for name, schema in table_schemas(384).items():
        assert record.table(name).schema.remove_metadata() == schema.remove_metadata(), name
    assert check_record(record).ok, check_record(record).problems
    _assert_every_batch_once(record, acknowledged)
    migrated = open_record(str(reference), Settings())
    for name in ("batches", *BATCH_TABLES):
        assert _rows(record, name) == _rows(migrated, name), name
    # The descriptors schema 2 derives from the samples: the same as an uninterrupted run's.
    key = [("device_id", "ascending"), ("track_id", "ascending")]
    columns = ["device_id", "track_id", "descriptor", "descriptor_weight"]
    assert (
        record.read_visible("tracklets", columns)
        .sort_by(key)
        .equals(migrated.read_visible("tracklets", columns).sort_by(key))
    )


# A migrate killed after the last migration's log row, before its version stamp.
LOGGED_THEN_KILLED = """
import os, signal, sys
from herdrecord.store import migrations
from herdrecord.config import Settings
from herdrecord.store.record import migrate_record
stamp = migrations._set_schema_version
def killed_before_the_last_stamp(db, version):
    if version == migrations.latest_version():
        os.kill(os.getpid(), signal.SIGKILL)
    stamp(db, version)
migrations._set_schema_version = killed_before_the_last_stamp
migrate_record(sys.argv[1], Settings())
"""


def test_a_migrate_killed_between_its_log_and_its_version_stamp_is_finished_by_the_next(
    tmp_path: Path,
) -> None:
    path = tmp_path / "herd"
    _schema_1_record(path)
    child = subprocess.run(
        [sys.executable, "-c", LOGGED_THEN_KILLED, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    latest = len(MIGRATIONS)
    assert _migration_state(path) == (latest - 1, list(range(1, latest + 1)))
    with pytest.raises(MigrationRequired):
        open_record(str(path), Settings())
    migrate_record(str(path), Settings())
    assert open_record(str(path), Settings()).schema_version == latest


def test_a_table_creation_cut_short_is_made_again_by_the_next_migrate(tmp_path: Path) -> None:
    """A migrate killed inside a table's creation leaves its directory without a version,
    which LanceDB lists but cannot open (seen once at a random kill in CI)."""
    path = tmp_path / "herd"
    _schema_1_record(path)
    (path / "days.lance" / "data").mkdir(parents=True)  # what the cut creation left
    migrate_record(str(path), Settings())
    record = open_record(str(path), Settings())
    assert record.table("days").count_rows() == 0
    assert check_record(record).ok
