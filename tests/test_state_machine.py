"""A state machine (hypothesis) drives ingest, re-sends, compaction and review answers (confirm,
reassign, merge, split) against a simple model of what the record must hold, and checks after
every step that they agree: every batch once, every tracklet once, every answer still in force
(an answer naming a merged animal now names the animal it was merged into), no link to a merged
animal, `check` clean."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from herdrecord.config import Settings
from herdrecord.errors import InvalidInput
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.linking.review import TrackletRef, confirm, merge, reassign, split
from herdrecord.linking.run import link_pending
from herdrecord.ops.check import check_record
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.compaction import compact_if_fragmented
from herdrecord.store.linktable import current_links
from herdrecord.store.record import create_record

SIM = SimulationConfig(
    animals=4, pens=1, days=2, seed=41, arrival_rate_per_day=0.0, obs_interval_s=600.0
)
BATCHES = simulate(SIM).batches


class RecordMachine(RuleBasedStateMachine):
    """The record under random operations, and the model it must agree with."""

    @initialize()
    def start(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="herdrecord-machine-"))
        self.record = create_record(
            str(self.folder / "herd"), Settings(retention_enabled=False, lock_timeout_s=10)
        )
        self.sent = 0
        self.committed: set[str] = set()
        self.tracklets: set[tuple[str, str]] = set()
        self.answers: dict[tuple[str, str], str] = {}
        self.merged: dict[str, str] = {}  # animal -> the animal it was merged into

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _send(self, index: int) -> str:
        batch = BATCHES[index]
        candidate = parse_json(json.dumps(batch).encode(), str(batch["batch_id"]))
        return ingest(self.record, [candidate]).outcomes[0].status

    @precondition(lambda self: self.sent < len(BATCHES))
    @rule()
    def ingest_the_next_batch(self) -> None:
        batch = BATCHES[self.sent]
        assert self._send(self.sent) == "accepted"
        self.sent += 1
        self.committed.add(str(batch["batch_id"]))
        self.tracklets |= {(str(batch["device_id"]), t["track_id"]) for t in batch["tracklets"]}
        link_pending(self.record)

    @precondition(lambda self: self.sent > 0)
    @rule(data=st.data())
    def resend_a_batch(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, self.sent - 1))
        assert self._send(index) == "duplicate"

    @rule()
    def compact(self) -> None:
        compact_if_fragmented(self.record, force=True)

    def _linked(self) -> list[tuple[tuple[str, str], str]]:
        links = current_links(self.record)
        return sorted(
            ((d, t), a)
            for d, t, a in zip(
                links.column("device_id").to_pylist(),
                links.column("track_id").to_pylist(),
                links.column("animal_id").to_pylist(),
                strict=True,
            )
            if a is not None
        )

    @precondition(lambda self: self.sent > 0)
    @rule(data=st.data())
    def confirm_a_link(self, data: st.DataObject) -> None:
        linked = self._linked()
        if not linked:
            return
        key, animal = data.draw(st.sampled_from(linked))
        confirm(self.record, TrackletRef(*key), "machine")
        self.answers[key] = animal

    @precondition(lambda self: self.sent > 0)
    @rule(data=st.data())
    def reassign_a_tracklet(self, data: st.DataObject) -> None:
        linked = self._linked()
        animals = sorted({a for _, a in linked})
        if len(animals) < 2:
            return
        key, animal = data.draw(st.sampled_from(linked))
        other = data.draw(st.sampled_from([a for a in animals if a != animal]))
        try:
            reassign(self.record, TrackletRef(*key), other, "machine")
        except InvalidInput:
            return  # refused (e.g. seen elsewhere at the same time): nothing changed
        self.answers[key] = other

    @precondition(lambda self: self.sent > 0)
    @rule(data=st.data())
    def merge_two_animals(self, data: st.DataObject) -> None:
        pairs = self._never_together()
        if not pairs:
            return
        keep, gone = data.draw(st.sampled_from(pairs))
        moving = [key for key, animal in self._linked() if animal == gone]
        merge(self.record, keep, gone, "machine")
        self.merged[gone] = keep
        self.answers = {key: keep if a == gone else a for key, a in self.answers.items()}
        current = dict(self._linked())
        assert all(current.get(key) == keep for key in moving)

    @precondition(lambda self: self.sent > 0)
    @rule(data=st.data())
    def split_off_tracklets(self, data: st.DataObject) -> None:
        linked = self._linked()
        if not linked:
            return
        animal = data.draw(st.sampled_from(sorted({a for _, a in linked})))
        mine = [key for key, a in linked if a == animal]
        chosen = data.draw(st.lists(st.sampled_from(mine), min_size=1, max_size=3, unique=True))
        outcome = split(self.record, animal, [TrackletRef(*key) for key in chosen], "machine")
        new = outcome.animals[1]
        for key in chosen:
            self.answers[key] = new

    def _never_together(self) -> list[tuple[str, str]]:
        """Return the (keep, gone) pairs of linked animals never seen at the same time."""
        tracklets = self.record.read_visible("tracklets", ["device_id", "track_id", "start", "end"])
        spans = {
            (d, t): (start, end)
            for d, t, start, end in zip(
                *(tracklets.column(c).to_pylist() for c in tracklets.column_names), strict=True
            )
        }
        seen: dict[str, list[tuple[datetime, datetime]]] = {}
        for key, animal in self._linked():
            seen.setdefault(animal, []).append(spans[key])
        return [
            (keep, gone)
            for keep in sorted(seen)
            for gone in sorted(seen)
            if keep != gone
            and not any(a <= d and c <= b for a, b in seen[keep] for c, d in seen[gone])
        ]

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not hasattr(self, "record"):
            return
        ledger = (
            self.record.table("batches")
            .to_lance()
            .to_table(columns=["batch_id"])
            .column("batch_id")
            .to_pylist()
        )
        assert sorted(ledger) == sorted(self.committed)  # every batch once
        stored = (
            self.record.table("tracklets").to_lance().to_table(columns=["device_id", "track_id"])
        )
        keys = list(
            zip(
                stored.column("device_id").to_pylist(),
                stored.column("track_id").to_pylist(),
                strict=True,
            )
        )
        assert len(keys) == len(set(keys)) and set(keys) == self.tracklets
        current = dict(self._linked())
        for key, animal in self.answers.items():
            assert current.get(key) == animal, f"{key}: answered {animal}, now {current.get(key)}"
        animals = {
            row["animal_id"]: row
            for row in self.record.table("animals")
            .to_lance()
            .to_table(columns=["animal_id", "status", "merged_into"])
            .to_pylist()
        }
        for gone, keep in self.merged.items():
            assert animals[gone]["status"] == "merged" and animals[gone]["merged_into"] == keep
        assert not set(current.values()) & set(self.merged), "a link names a merged animal"
        assert check_record(self.record).ok


RecordMachine.TestCase.settings = settings(
    max_examples=4,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRecordMachine = RecordMachine.TestCase
