"""Moving a record to a new embedder without losing identities: re-embed, re-link in a
shadow, compare, then switch.

1. **Embed** (resumable): every committed tracklet with stored keyframes is re-embedded with
   the new model — its descriptor is the normalised mean of its keyframes' vectors — `chunk`
   tracklets per Lance commit into `<record>.reembed/work`. A rerun skips what is done, so a
   killed run loses at most one chunk of work.
2. **Link** (redone whole when interrupted): a fresh copy of the record is made under its
   writer lock (Lance data files are hard-linked: Lance never rewrites a file; everything
   else is copied) and moved to the new space there: tracklets carry the new descriptors,
   samples start empty (they are the old model's vectors), the pool is seeded with the new
   descriptors of each animal's current tracklets (the shadow pool), the embedder is the new
   one. Tracklets without a keyframe cannot be re-embedded; they keep their animal (a
   must-link decided by "reembed"). Then every pen-day is re-linked, and the shadow's
   partition is compared with the record's: which tracklets would change animal.
3. **Apply**: under the record's writer lock, and only if nothing was written to the record
   since the copy, the record's directory is renamed aside (`<record>.before-reembed-<hash>`,
   kept until you delete it) and the shadow's moved into its place. An interrupted switch
   is finished by the next run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa

from herdrecord.embedding.model import Embedder, EmbedderId
from herdrecord.errors import InvalidInput
from herdrecord.linking.pool import DEFAULT_EXEMPLARS_PER_ANIMAL, Pool
from herdrecord.linking.poolindex import open_pool_index, write_pool
from herdrecord.linking.run import relink_all
from herdrecord.store.linktable import current_links
from herdrecord.store.location import LOCK_FILE
from herdrecord.store.record import INDEX_FILE, PENDING_FILE, Record, open_record
from herdrecord.store.schema import META_EMBEDDER, embedding_type, table_schemas
from herdrecord.store.sql import sql_literal

STATE_FILE = "state.json"
KEPT_BY = "reembed"  # decided_by of the must-links that keep tracklets without keyframes
CHUNK = 256

Progress = Callable[[int, int], None]  # (tracklets embedded so far, tracklets to embed)


@dataclass(frozen=True)
class Change:
    """A tracklet the new model would give to another animal."""

    device_id: str
    track_id: str
    before: str | None  # its animal in the record
    after: str | None  # in the shadow: the record's id of that animal, or a new one's


@dataclass(frozen=True)
class ReembedReport:
    """Where a move to a new embedder stands, and what it would change."""

    shadow: str
    stage: str  # embedding, linked or applied
    embedder: dict[str, Any]  # the new model: name, dim, metric, weights_sha256
    tracklets: int  # committed tracklets of the record
    reembedded: int  # of them, re-embedded from their keyframes
    kept: int  # without a keyframe: kept on their animal
    linked_before: int  # tracklets linked to an animal in the record
    linked_after: int  # in the shadow
    changed: list[Change]  # tracklets that would change animal
    new_animals: int  # animals of the shadow that match none of the record's
    backup: str | None = None  # where the old record was moved by --apply

    @property
    def changed_share(self) -> float:
        """Return the share of linked tracklets that would change animal."""
        return len(self.changed) / max(1, self.linked_before)


def shadow_of(path: Path) -> Path:
    """Return the folder of a record's move to a new embedder."""
    return path.with_name(path.name + ".reembed")


def reembed(
    record: Record,
    embedder: Embedder,
    *,
    chunk: int = CHUNK,
    restart: bool = False,
    progress: Progress | None = None,
) -> ReembedReport:
    """Embed (resuming) and re-link in the shadow; return the report. The record is not
    changed; `apply_reembed` switches it over."""
    identity = embedder.identity
    current = record.embedder
    if identity.weights_sha256 == current.weights_sha256 and identity.dim == current.dim:
        raise InvalidInput(f"the record already holds {identity.describe()} vectors")
    shadow = shadow_of(record.path)
    state = _read_state(shadow)
    if state is not None and (restart or state["embedder"] != asdict(identity)):
        shutil.rmtree(shadow)
        state = None
    if state is None:
        shadow.mkdir(parents=True, exist_ok=True)
        state = {"embedder": asdict(identity), "stage": "embedding", "started": _now()}
        _write_state(shadow, state)
    if state["stage"] == "applied":
        raise InvalidInput(f"{shadow} was applied already; delete it to start another move")
    if state["stage"] == "embedding":
        _embed(record, embedder, shadow, chunk, progress)
        state["stage"] = "linking"
        _write_state(shadow, state)
    if state["stage"] == "linking":
        report, versions = _link_in_shadow(record, identity, shadow)
        state["report"] = asdict(report)
        state["source_versions"] = versions
        state["stage"] = "linked"
        _write_state(shadow, state)
    return _report(state)


def finish_switch(path: Path) -> ReembedReport | None:
    """Finish a switch a killed `--apply` left halfway (the record may be missing from
    `path` meanwhile); return its report, or None when no switch is under way."""
    state = _read_state(shadow_of(path))
    if state is None or state["stage"] != "switching":
        return None
    return apply_reembed(path)


def apply_reembed(path: Path) -> ReembedReport:
    """Switch the record at `path` to its linked shadow; return the final report."""
    shadow = shadow_of(path)
    state = _read_state(shadow)
    if state is None or state["stage"] not in ("linked", "switching", "applied"):
        raise InvalidInput(f"nothing to apply: run herdrecord reembed {path} --weights DIR first")
    if state["stage"] == "applied":
        return _report(state)
    backup = path.with_name(
        f"{path.name}.before-reembed-{state['embedder']['weights_sha256'][:12]}"
    )
    if state["stage"] == "linked":
        record = open_record(str(path))
        with record.writer():
            if _versions(record) != state["source_versions"]:
                state["stage"] = "embedding"  # the next run embeds what is new, re-links
                _write_state(shadow, state)
                raise InvalidInput(
                    "the record was written to since the shadow was made; run herdrecord "
                    f"reembed {path} --weights DIR again to redo the linking (the embedding "
                    "work is kept)"
                )
            state["stage"] = "switching"
            state["backup"] = str(backup)
            _write_state(shadow, state)
            os.rename(path, backup)
    if path.exists() and (shadow / "record").exists():
        # Killed after marking the switch, before moving the record aside: do it now.
        record = open_record(str(path))
        with record.writer():
            if _versions(record) != state["source_versions"]:
                state["stage"] = "embedding"
                _write_state(shadow, state)
                raise InvalidInput(
                    f"{path} was written to since the shadow was made; run herdrecord reembed again"
                )
            os.rename(path, backup)
    if not path.exists():
        os.rename(shadow / "record", path)
    state["stage"] = "applied"
    state["applied"] = _now()
    _write_state(shadow, state)
    return _report(state)


def _embed(
    record: Record, embedder: Embedder, shadow: Path, chunk: int, progress: Progress | None
) -> None:
    keyed = record.read_visible("keyframes", ["device_id", "track_id"])
    wanted = sorted(
        set(zip(*(keyed.column(c).to_pylist() for c in ("device_id", "track_id")), strict=True))
    )
    table = _work_table(shadow, embedder.dim)
    done_rows = table.to_lance().to_table(columns=["device_id", "track_id"])
    done = set(
        zip(
            done_rows.column("device_id").to_pylist(),
            done_rows.column("track_id").to_pylist(),
            strict=True,
        )
    )
    todo = [key for key in wanted if key not in done]
    finished = len(wanted) - len(todo)
    if progress:
        progress(finished, len(wanted))
    for start in range(0, len(todo), chunk):
        keys = todo[start : start + chunk]
        tracks = ", ".join(sql_literal(t) for t in sorted({t for _, t in keys}))
        frames = record.read_visible(
            "keyframes", ["device_id", "track_id", "jpeg"], where=f"track_id IN ({tracks})"
        )
        by_key: dict[tuple[str, str], list[bytes]] = defaultdict(list)
        for device, track, jpeg in zip(
            *(frames.column(c).to_pylist() for c in ("device_id", "track_id", "jpeg")),
            strict=True,
        ):
            by_key[(device, track)].append(jpeg)
        keys = [k for k in keys if by_key.get(k)]
        vectors = embedder.embed_jpegs([j for k in keys for j in by_key[k]])
        rows, at = [], 0
        for key in keys:
            n = len(by_key[key])
            mean = vectors[at : at + n].mean(axis=0)
            at += n
            rows.append((key, mean / max(float(np.linalg.norm(mean)), 1e-12), n))
        if rows:
            table.add(
                pa.table(
                    {
                        "device_id": [k[0] for k, _, _ in rows],
                        "track_id": [k[1] for k, _, _ in rows],
                        "descriptor": pa.FixedSizeListArray.from_arrays(
                            pa.array(np.concatenate([v for _, v, _ in rows]), pa.float32()),
                            embedder.dim,
                        ),
                        "keyframes": pa.array([n for _, _, n in rows], pa.int32()),
                    },
                    schema=table.schema,
                )
            )
        finished += len(todo[start : start + chunk])
        if progress:
            progress(finished, len(wanted))


def _link_in_shadow(
    record: Record, identity: EmbedderId, shadow: Path
) -> tuple[ReembedReport, dict[str, int]]:
    copy = shadow / "record"
    with record.writer():
        if copy.exists():
            shutil.rmtree(copy)
        staging = shadow / "record.copying"
        if staging.exists():
            shutil.rmtree(staging)
        _copy_record(record.path, staging)
        source_versions = _versions(record)
    os.rename(staging, copy)

    descriptors = _work_table(shadow, identity.dim).to_lance().to_table()
    work = open_record(str(copy), record.settings)
    before = _animal_of(current_links(work))  # the copy's: what was copied under the lock
    animals = work.dataset("animals").to_table(columns=["animal_id"])
    known = set(animals.column("animal_id").to_pylist())
    kept = _move_to_new_space(work, identity, descriptors, before)
    work = open_record(str(copy), record.settings)
    relink_all(work)
    after = _animal_of(current_links(work))
    changed, new_animals = _compare(before, after, known)
    tracklets = work.read_visible("tracklets", ["device_id"]).num_rows
    report = ReembedReport(
        shadow=str(shadow),
        stage="linked",
        embedder=asdict(identity),
        tracklets=tracklets,
        reembedded=descriptors.num_rows,
        kept=kept,
        linked_before=sum(1 for a in before.values() if a is not None),
        linked_after=sum(1 for a in after.values() if a is not None),
        changed=changed,
        new_animals=new_animals,
    )
    return report, source_versions


def _move_to_new_space(
    work: Record,
    identity: EmbedderId,
    descriptors: pa.Table,
    animal_of: dict[tuple[str, str], str | None],
) -> int:
    """Give the shadow the new model's descriptors, empty samples, a pool seeded from the
    re-embedded tracklets of each animal, and the new embedder; return how many tracklets
    were kept on their animal for want of keyframes."""
    dim = identity.dim
    new = {
        (d, t): i
        for i, (d, t) in enumerate(
            zip(
                descriptors.column("device_id").to_pylist(),
                descriptors.column("track_id").to_pylist(),
                strict=True,
            )
        )
    }
    vectors = np.asarray(
        descriptors.column("descriptor").combine_chunks().flatten().to_numpy(), np.float32
    ).reshape(-1, dim)
    rows = work.dataset("tracklets").to_table()
    keys = list(
        zip(rows.column("device_id").to_pylist(), rows.column("track_id").to_pylist(), strict=True)
    )
    found = np.array([new.get(k, -1) for k in keys], dtype=np.int64)
    matrix = np.zeros((len(keys), dim), np.float32)
    matrix[found >= 0] = vectors[found[found >= 0]]
    weight = np.where(
        found >= 0, rows.column("descriptor_weight").to_numpy(zero_copy_only=False), 0.0
    )
    schemas = table_schemas(dim)
    schema = schemas["tracklets"]
    rows = rows.drop_columns(["descriptor", "descriptor_weight"])
    rows = rows.append_column(
        schema.field("descriptor"),
        pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel().astype(np.float16)), dim).cast(
            embedding_type(dim)
        ),
    ).append_column(schema.field("descriptor_weight"), pa.array(weight, pa.float32()))
    db = work.db
    for name, table_schema, data in (
        ("tracklets", schema, rows.select(schema.names)),
        ("samples", schemas["samples"], None),
        ("pool", schemas["pool"], None),
    ):
        db.drop_table(name)
        db.create_table(name, data=data, schema=table_schema)
    (work.path / INDEX_FILE).unlink(missing_ok=True)
    metadata = db.open_table("metadata")
    spec = {
        "name": identity.name,
        "dim": dim,
        "metric": identity.metric,
        "weights_sha256": identity.weights_sha256,
        # After a move a batch must say which weights made it: old edge software that
        # states none would otherwise pour the old model's vectors into the new space.
        "weights_required": True,
    }
    metadata.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(
        pa.table({"key": [META_EMBEDDER], "value": [json.dumps(spec)]}, schema=metadata.schema)
    )
    work = open_record(str(work.path), work.settings)
    pool = Pool(dim, DEFAULT_EXEMPLARS_PER_ANIMAL)
    starts = rows.column("start").cast(pa.int64()).to_numpy() / 1e6
    ends = rows.column("end").cast(pa.int64()).to_numpy() / 1e6
    pens = rows.column("pen_id").to_pylist()
    for i in np.argsort(starts, kind="stable"):
        animal = animal_of.get(keys[i])
        if animal is not None and found[i] >= 0:
            pool.add(
                animal,
                matrix[i],
                float(starts[i]),
                float(ends[i] - starts[i] + 1),
                (keys[i][0], keys[i][1], pens[i]),
            )
    write_pool(work, pool, open_pool_index(work, pool))
    keep = [(k, a) for k, a in animal_of.items() if a is not None and k not in new]
    if keep:
        now = datetime.now(UTC)
        table = work.table("constraints")
        table.add(
            pa.Table.from_pylist(
                [
                    {
                        "device_id": d,
                        "track_id": t,
                        "animal_id": a,
                        "kind": "must_link",
                        "decided_by": KEPT_BY,
                        "decided_at": now,
                    }
                    for (d, t), a in keep
                ],
                schema=table.schema,
            )
        )
    return len(keep)


def _compare(
    before: dict[tuple[str, str], str | None],
    after: dict[tuple[str, str], str | None],
    known: set[str],
) -> tuple[list[Change], int]:
    """Return the tracklets whose animal differs (the shadow keeps the record's animal ids:
    its pool is seeded with them, so an id means the same animal in both), and how many
    animals the shadow enrolled that the record does not have."""
    changed = [
        Change(key[0], key[1], before.get(key), after.get(key))
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]
    enrolled = {a for a in after.values() if a is not None and a not in known}
    return changed, len(enrolled)


def _animal_of(links: pa.Table) -> dict[tuple[str, str], str | None]:
    return {
        (d, t): a
        for d, t, a in zip(
            *(links.column(c).to_pylist() for c in ("device_id", "track_id", "animal_id")),
            strict=True,
        )
    }


def _copy_record(source: Path, target: Path) -> None:
    """Copy a record: files under a Lance table are hard-linked (Lance writes new files and
    never changes one), the others copied; the lock and pending files are left out."""

    def copy(src: str, dst: str) -> None:
        if any(part.endswith(".lance") for part in Path(src).relative_to(source).parts[:-1]):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(
        source, target, copy_function=copy, ignore=shutil.ignore_patterns(LOCK_FILE, PENDING_FILE)
    )


def _versions(record: Record) -> dict[str, int]:
    return {name: int(record.table(name).version) for name in record.table_names()}


def _work_table(shadow: Path, dim: int) -> Any:
    db = lancedb.connect(str(shadow / "work"))
    if "descriptors" in db.list_tables(limit=10_000).tables:
        return db.open_table("descriptors")
    schema = pa.schema(
        [
            ("device_id", pa.string()),
            ("track_id", pa.string()),
            ("descriptor", pa.list_(pa.float32(), dim)),
            ("keyframes", pa.int32()),
        ]
    )
    return db.create_table("descriptors", schema=schema)


def _read_state(shadow: Path) -> dict[str, Any] | None:
    path = shadow / STATE_FILE
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def _write_state(shadow: Path, state: dict[str, Any]) -> None:
    """Write the state file atomically (a new file renamed over the old)."""
    staging = shadow / (STATE_FILE + ".new")
    staging.write_text(json.dumps(state, indent=2, default=str))
    os.replace(staging, shadow / STATE_FILE)


def _report(state: dict[str, Any]) -> ReembedReport:
    fields = dict(state["report"])
    fields["changed"] = [Change(**c) for c in fields["changed"]]
    fields["stage"] = state["stage"]
    fields["backup"] = state.get("backup")
    return ReembedReport(**fields)


def _now() -> str:
    return datetime.now(UTC).isoformat()
