"""The re-ID pool: at most K exemplar descriptors per animal, recent and diverse ones kept.

Exemplars are cluster descriptors (float16 on disk) from confident links. Pigs grow from ~30
to ~110 kg in a few months and their look drifts, so the newest half of an animal's budget is
kept by recency and the rest by diversity (farthest-point), so that the pool follows the
animal without forgetting how it looked under other lighting and postures.

Memory: K exemplars x dim x 2 bytes per animal, plus ids; at K = 12, dim = 384 that is
9.2 KB per animal and 92 MB for 10,000 animals (float16 on disk and in the search matrix:
float32 scoring doubles the working copy for the pens being linked, not the whole pool).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

DEFAULT_EXEMPLARS_PER_ANIMAL = 12
TOP_M = 3  # an animal's score is the mean of its best M exemplar similarities


@dataclass
class AnimalExemplars:
    """One animal's exemplars; arrays of shape (k,) unless noted."""

    vectors: np.ndarray  # (k, d) float32, L2-normalised
    observed_s: np.ndarray  # seconds since the epoch
    evidence_s: np.ndarray
    exemplar_id: np.ndarray  # int64, stable for the exemplar's life (its FAISS id)
    device_id: list[str] = field(default_factory=list)
    track_id: list[str] = field(default_factory=list)
    pen_id: list[str] = field(default_factory=list)
    # (k, d') the vectors in the record's learned metric, what linking scores on; None: the
    # vectors themselves (no metric).
    looks: np.ndarray | None = None

    @property
    def scored(self) -> np.ndarray:
        """Return the vectors scores are computed on."""
        return self.vectors if self.looks is None else self.looks


class Pool:
    """Exemplars of every animal, budgeted, with the scoring linking uses."""

    def __init__(
        self,
        dim: int,
        per_animal: int = DEFAULT_EXEMPLARS_PER_ANIMAL,
        look: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.dim = dim
        self.per_animal = per_animal
        # The learned metric (vectors (n, d) -> unit looks (n, d')): scores are computed on
        # looks; the table and the FAISS index keep the vectors themselves.
        self.look = look
        self.animals: dict[str, AnimalExemplars] = {}
        self.next_id = 0

    def __len__(self) -> int:
        return sum(len(e.observed_s) for e in self.animals.values())

    def add(
        self,
        animal_id: str,
        vector: np.ndarray,
        observed_s: float,
        evidence_s: float,
        source: tuple[str, str, str],
        look: np.ndarray | None = None,
    ) -> None:
        """Add one exemplar (d,) to an animal and trim it to the budget; `look` is its vector
        in the learned metric (computed from the vector when the pool has a metric)."""
        current = self.animals.get(animal_id)
        vector = np.asarray(vector, dtype=np.float32)[None, :]
        if self.look is not None and look is None:
            look = self.look(vector)[0]
        if current is None:
            empty = np.zeros(0)
            current = AnimalExemplars(
                np.zeros((0, self.dim), np.float32), empty, empty, np.zeros(0, np.int64)
            )
            if look is not None:
                current.looks = np.zeros((0, len(look)), np.float32)
        if current.looks is not None and look is not None:
            current.looks = np.vstack([current.looks, np.asarray(look, np.float32)[None, :]])
        current.vectors = np.vstack([current.vectors, vector])
        current.observed_s = np.append(current.observed_s, observed_s)
        current.evidence_s = np.append(current.evidence_s, evidence_s)
        current.exemplar_id = np.append(current.exemplar_id, np.int64(self.next_id))
        self.next_id += 1
        current.device_id.append(source[0])
        current.track_id.append(source[1])
        current.pen_id.append(source[2])
        self.animals[animal_id] = _trim(current, self.per_animal)

    def remove_animal(self, animal_id: str) -> None:
        """Forget an animal's exemplars."""
        self.animals.pop(animal_id, None)

    def move(self, source: str, target: str) -> None:
        """Give the exemplars of `source` to `target` (a merge), within the budget."""
        moved = self.animals.pop(source, None)
        if moved is None:
            return
        kept = self.animals.get(target)
        if kept is None:
            self.animals[target] = _trim(moved, self.per_animal)
            return
        joined = AnimalExemplars(
            np.vstack([kept.vectors, moved.vectors]),
            np.concatenate([kept.observed_s, moved.observed_s]),
            np.concatenate([kept.evidence_s, moved.evidence_s]),
            np.concatenate([kept.exemplar_id, moved.exemplar_id]),
            kept.device_id + moved.device_id,
            kept.track_id + moved.track_id,
            kept.pen_id + moved.pen_id,
            None if kept.looks is None or moved.looks is None
            else np.vstack([kept.looks, moved.looks]),
        )  # fmt: skip
        self.animals[target] = _trim(joined, self.per_animal)

    def owners(self) -> dict[int, str]:
        """Return exemplar id -> animal id for every exemplar."""
        return {int(i): animal_id for animal_id, ex in self.animals.items() for i in ex.exemplar_id}

    def vectors_by_id(self) -> tuple[np.ndarray, np.ndarray]:
        """Return every exemplar's id (n,) and vector (n, d) float32."""
        if not self.animals:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        ids = np.concatenate([ex.exemplar_id for ex in self.animals.values()])
        vectors = np.vstack([ex.vectors for ex in self.animals.values()])
        return ids.astype(np.int64), vectors.astype(np.float32)

    def drop_observed(self, pen_id: str, from_s: float, to_s: float) -> None:
        """Forget exemplars seen in the pen within [from_s, to_s) (a pen-day being re-solved)."""
        for animal_id in list(self.animals):
            ex = self.animals[animal_id]
            if pen_id not in ex.pen_id:
                continue
            pens = np.array(ex.pen_id, dtype=object)
            drop = (pens == pen_id) & (ex.observed_s >= from_s) & (ex.observed_s < to_s)
            if not drop.any():
                continue
            if drop.all():
                del self.animals[animal_id]
            else:
                self.animals[animal_id] = _select(ex, np.flatnonzero(~drop))

    def scores(self, descriptors: np.ndarray, animal_ids: list[str]) -> np.ndarray:
        """Return (k, a) similarities of descriptors (k, d) to each animal (mean of top M).

        An animal without exemplars scores -1.
        """
        k, a = len(descriptors), len(animal_ids)
        out = np.full((k, a), -1.0, dtype=np.float32)
        present = [(col, self.animals[x]) for col, x in enumerate(animal_ids) if x in self.animals]
        if k == 0 or not present:
            return out
        # One matrix product for all animals, then the best M per animal on a padded grid.
        vectors = np.vstack([ex.scored for _, ex in present])
        sims = descriptors @ vectors.T  # (k, total exemplars)
        width = max(len(ex.observed_s) for _, ex in present)
        grid = np.full((k, len(present), width), -np.inf, dtype=np.float32)
        offset = 0
        for slot, (_, ex) in enumerate(present):
            n = len(ex.observed_s)
            grid[:, slot, :n] = sims[:, offset : offset + n]
            offset += n
        m = min(TOP_M, width)
        top = -np.partition(-grid, m - 1, axis=2)[:, :, :m] if width > m else grid
        counts = np.array([min(m, len(ex.observed_s)) for _, ex in present], dtype=np.float32)
        top = np.where(np.isfinite(top), top, 0.0)
        out[:, [col for col, _ in present]] = top.sum(axis=2) / counts
        return out

    def to_arrow(self, schema: pa.Schema) -> pa.Table:
        """Return every exemplar as rows of the `pool` table."""
        rows: dict[str, list[object]] = {name: [] for name in schema.names}
        vectors = []
        for animal_id in sorted(self.animals):
            ex = self.animals[animal_id]
            for i in range(len(ex.observed_s)):
                rows["exemplar_id"].append(int(ex.exemplar_id[i]))
                rows["animal_id"].append(animal_id)
                rows["device_id"].append(ex.device_id[i])
                rows["track_id"].append(ex.track_id[i])
                rows["pen_id"].append(ex.pen_id[i])
                rows["observed_at"].append(int(ex.observed_s[i] * 1e6))
                rows["evidence_s"].append(float(ex.evidence_s[i]))
                vectors.append(ex.vectors[i])
        dim = self.dim
        flat = np.asarray(vectors, dtype=np.float16).reshape(-1)
        columns = {name: rows[name] for name in schema.names if name != "embedding"}
        table = pa.table(
            {
                **{
                    k: pa.array(v, schema.field(k).type if k != "observed_at" else pa.int64())
                    for k, v in columns.items()
                },
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float16()), dim),
            }
        )
        table = table.set_column(
            table.schema.get_field_index("observed_at"),
            "observed_at",
            table.column("observed_at").cast(schema.field("observed_at").type),
        )
        return table.select(schema.names).cast(schema)

    @classmethod
    def from_arrow(
        cls,
        table: pa.Table,
        dim: int,
        per_animal: int,
        look: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Pool:
        """Return the pool held in rows of the `pool` table (scored in the metric `look`)."""
        pool = cls(dim, per_animal, look)
        if table.num_rows == 0:
            return pool
        table = table.sort_by([("animal_id", "ascending"), ("observed_at", "ascending")])
        flat = table.column("embedding").combine_chunks().flatten()
        vectors = np.asarray(flat.to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)
        animal = table.column("animal_id").to_pylist()
        observed = np.asarray(table.column("observed_at").cast(pa.int64()).to_numpy()) / 1e6
        evidence = np.asarray(table.column("evidence_s").to_numpy(), np.float64)
        ids = np.asarray(table.column("exemplar_id").to_numpy(), np.int64)
        pool.next_id = int(ids.max()) + 1
        device = table.column("device_id").to_pylist()
        track = table.column("track_id").to_pylist()
        pen = table.column("pen_id").to_pylist()
        bounds = np.flatnonzero(
            [True, *(a != b for a, b in zip(animal[1:], animal[:-1], strict=True))]
        )
        looks = look(vectors) if look is not None else None
        for lo, hi in zip(bounds, [*bounds[1:], len(animal)], strict=True):
            pool.animals[animal[lo]] = AnimalExemplars(
                vectors[lo:hi],
                observed[lo:hi],
                evidence[lo:hi],
                ids[lo:hi],
                device[lo:hi],
                track[lo:hi],
                pen[lo:hi],
                None if looks is None else looks[lo:hi],
            )
        return pool


def _select(ex: AnimalExemplars, keep: np.ndarray) -> AnimalExemplars:
    return AnimalExemplars(
        ex.vectors[keep],
        ex.observed_s[keep],
        ex.evidence_s[keep],
        ex.exemplar_id[keep],
        [ex.device_id[i] for i in keep],
        [ex.track_id[i] for i in keep],
        [ex.pen_id[i] for i in keep],
        None if ex.looks is None else ex.looks[keep],
    )


def _trim(ex: AnimalExemplars, budget: int) -> AnimalExemplars:
    """Keep the newest half of the budget, then the most diverse of the older ones."""
    n = len(ex.observed_s)
    if n <= budget:
        return ex
    by_age = np.argsort(-ex.observed_s, kind="stable")
    recent = list(by_age[: budget // 2])
    older = list(by_age[budget // 2 :])
    kept = recent
    while len(kept) < budget and older:
        sims = ex.vectors[older] @ ex.vectors[kept].T
        farthest = int(np.argmin(sims.max(axis=1)))
        kept.append(older.pop(farthest))
    return _select(ex, np.array(sorted(kept)))
