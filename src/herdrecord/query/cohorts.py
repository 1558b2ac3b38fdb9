"""Named cohort queries: vets' questions shipped as SQL files, with typed, checked parameters.

Each query is a file `herdrecord/queries/<name>.sql` over the views of `query.connect`, opened
by a header of comment lines:

    -- name: lameness
    -- description: Animals whose behaviour changed before a lameness score ... (lines join)
    -- param: days integer = 3 [1, 30] -- days up to and including the day of the score
    -- param: measure text = lying_share {lying_share, gait_mean} -- the measure compared
    -- param: as_of date = null -- optional: null unless given
    -- param: animal text -- required: no default

Types are integer, double, text and date; `[low, high]` bounds a number (inclusive) and
`{a, b}` lists a text's choices. Values arrive as text (a command line, a URL), are converted
and checked here, and are bound as DuckDB parameters (`$days`): never formatted into the SQL.
`lookalikes` (FAISS over the re-ID pool) is written in Python and declared by the same header.
Every result carries its query and parameters in the Arrow schema metadata, so an exported
file says what question it answers. The SQL reads the record's coverage floor as
`getvariable('coverage_floor_min')`: days observed for less are partial, and skipped.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from importlib import resources
from typing import Literal, cast, get_args

import numpy as np
import pyarrow as pa

from herdrecord.errors import (
    InvalidInput,
    UnknownAnimal,
    UnknownQuery,
)
from herdrecord.linking.pool import DEFAULT_EXEMPLARS_PER_ANIMAL, Pool
from herdrecord.linking.poolindex import open_pool_index
from herdrecord.query.views import connect_for
from herdrecord.reid import EmbeddingIndex, make_index
from herdrecord.store.record import Record

ParamType = Literal["integer", "double", "text", "date"]
PARAM_TYPES: tuple[str, ...] = get_args(ParamType)
ParamValue = int | float | str | date | None

META_QUERY = b"herdrecord.query"
META_PARAMS = b"herdrecord.params"

_NAME = r"[a-z_][a-z0-9_]*"
_PARAM_LINE = re.compile(
    rf"(?P<name>{_NAME})\s+(?P<type>\w+)"
    r"(?:\s*=\s*(?P<default>[^\s\[{]+))?"
    r"(?:\s*\[\s*(?P<low>[^,\]]+?)\s*,\s*(?P<high>[^\]]+?)\s*\])?"
    r"(?:\s*\{(?P<choices>[^}]*)\})?"
    r"\s+--\s+(?P<meaning>.+)"
)
_REFERENCE = re.compile(rf"\$({_NAME})")


@dataclass(frozen=True)
class QueryParam:
    """One parameter of a named query, as its header declares it."""

    name: str
    type: ParamType
    meaning: str
    default: ParamValue = None  # typed; None: null unless given, or required
    required: bool = False
    low: float | None = None  # inclusive bounds of a number
    high: float | None = None
    choices: tuple[str, ...] = ()  # the values a text may take; empty: any

    def signature(self) -> str:
        """Return the parameter as the header writes it: `days integer = 3 [1, 30]`."""
        text = f"{self.name} {self.type}"
        if not self.required:
            shown = "null" if self.default is None else _shown(self.default)
            text += f" = {shown}"
        if self.low is not None and self.high is not None:
            text += f" [{_shown(self.low)}, {_shown(self.high)}]"
        if self.choices:
            text += " {" + ", ".join(self.choices) + "}"
        return text


@dataclass(frozen=True)
class NamedQuery:
    """A named cohort query: what it answers, its parameters, its SQL (None: Python)."""

    name: str
    description: str
    params: tuple[QueryParam, ...]
    sql: str | None


class InvalidParameters(InvalidInput):
    """Parameters given to a named query are unknown, missing, mistyped or out of range."""

    def __init__(self, query: str, problems: Sequence[str]) -> None:
        self.query = query
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            super().__init__(f"query {query}: {self.problems[0]}")
        else:
            lines = [f"query {query}: {len(self.problems)} problems with the parameters:"]
            super().__init__("\n".join(lines + [f"  {p}" for p in self.problems]))


def list_queries() -> list[NamedQuery]:
    """Return every named query, by name."""
    return sorted([*_sql_queries(), LOOKALIKES], key=lambda q: q.name)


def get_query(name: str) -> NamedQuery:
    """Return the named query; raise UnknownQuery."""
    queries = {q.name: q for q in list_queries()}
    if name not in queries:
        raise UnknownQuery(name, sorted(queries))
    return queries[name]


def run_query(record: Record, name: str, params: Mapping[str, str]) -> pa.Table:
    """Return the rows of the named query on the record, its parameters given as text."""
    query = get_query(name)
    values = bind_params(query, params)
    if query.sql is None:
        table = _PYTHON_QUERIES[query.name](record, values)
    else:
        con = connect_for(record, query.sql)
        try:
            floor_min = 60.0 * record.settings.day_coverage_floor_h
            con.execute("SET VARIABLE coverage_floor_min = $m", {"m": floor_min})
            table = con.sql(query.sql, params=values).to_arrow_table()
        finally:
            con.close()
    shown = {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items()}
    return table.replace_schema_metadata(
        {**(table.schema.metadata or {}), META_QUERY: query.name, META_PARAMS: json.dumps(shown)}
    )


def bind_params(query: NamedQuery, given: Mapping[str, str]) -> dict[str, ParamValue]:
    """Return every parameter's typed value (given, else its default); raise
    InvalidParameters listing each problem."""
    declared = {p.name: p for p in query.params}
    problems = []
    for name in given:
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            listed = ", ".join(declared) or "none"
            problems.append(f"no parameter {name!r}{hint}; its parameters: {listed}")
    values: dict[str, ParamValue] = {}
    for param in query.params:
        if param.name not in given:
            if param.required:
                problems.append(
                    f"{param.name} is required ({param.type}: {param.meaning}); "
                    f"give {param.name}=VALUE"
                )
            values[param.name] = param.default
            continue
        try:
            values[param.name] = _checked(param, given[param.name])
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidParameters(query.name, problems)
    return values


def _checked(param: QueryParam, text: str) -> ParamValue:
    """Return the text as the parameter's type; raise ValueError saying what is wrong."""
    value = _converted(param, text.strip())
    low, high = param.low, param.high
    if isinstance(value, int | float) and low is not None and high is not None:
        _check_range(param.name, value, low, high)
    if param.choices and value not in param.choices:
        raise ValueError(f"{param.name}={text!r}: give one of {', '.join(param.choices)}")
    return value


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(
            f"{name}={_shown(value)} is out of range: give {_shown(low)} to {_shown(high)}"
        )


def _converted(param: QueryParam, text: str) -> ParamValue:
    where = f"{param.name}={text!r}"
    if param.type == "integer":
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise ValueError(f"{where} is not a whole number")
        return int(text)
    if param.type == "double":
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{where} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{where} is not a finite number")
        return number
    if param.type == "date":
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{where} is not a date; write YYYY-MM-DD, e.g. 2026-09-28") from None
    if not text:
        raise ValueError(f"{param.name} is empty; give {param.meaning}")
    return text


def _shown(value: ParamValue) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value.isoformat() if isinstance(value, date) else str(value)


def parse_header(text: str, source: str) -> NamedQuery:
    """Return the query a header and its SQL declare (`source` names it in errors); raise
    ValueError for a malformed header: a shipped query that fails is a bug, not a user's."""
    lines = text.splitlines()
    header = []
    for line in lines:
        if not line.startswith("--"):
            break
        header.append(line[2:].strip())
    body = "\n".join(lines[len(header) :])
    name, description, params = "", [], []
    for line in header:
        key, _, value = line.partition(":")
        if key == "name":
            name = value.strip()
        elif key == "description":
            description.append(value.strip())
        elif key == "param":
            params.append(_parse_param(value.strip(), source))
    if not re.fullmatch(_NAME, name) or not description:
        raise ValueError(f"{source}: the header needs `-- name:` and `-- description:` lines")
    if body.strip():
        declared = {p.name for p in params}
        used = set(_REFERENCE.findall(body))
        if declared != used:
            raise ValueError(
                f"{source}: parameters declared {sorted(declared)} but used {sorted(used)}; "
                "DuckDB refuses a parameter the SQL does not use"
            )
    return NamedQuery(name, " ".join(description), tuple(params), text if body.strip() else None)


def _parse_param(text: str, source: str) -> QueryParam:
    match = _PARAM_LINE.fullmatch(text)
    if match is None or match["type"] not in PARAM_TYPES:
        raise ValueError(
            f"{source}: `-- param: {text}`: write NAME TYPE [= DEFAULT] [[LOW, HIGH]] "
            f"[{{A, B}}] -- MEANING, TYPE one of {', '.join(PARAM_TYPES)}"
        )
    choices = tuple(c.strip() for c in (match["choices"] or "").split(",") if c.strip())
    param = QueryParam(
        name=match["name"],
        type=cast(ParamType, match["type"]),
        meaning=match["meaning"].strip(),
        required=match["default"] is None,
        low=float(match["low"]) if match["low"] is not None else None,
        high=float(match["high"]) if match["high"] is not None else None,
        choices=choices,
    )
    if match["default"] is None or match["default"] == "null":
        return param
    try:
        default = _checked(param, match["default"])
    except ValueError as exc:
        raise ValueError(f"{source}: default of {exc}") from None
    return replace(param, default=default)


@functools.cache
def _sql_queries() -> tuple[NamedQuery, ...]:
    folder = resources.files("herdrecord.query") / "queries"
    queries = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        query = parse_header(entry.read_text(encoding="utf-8"), entry.name)
        if query.sql is None or f"{query.name}.sql" != entry.name:
            raise ValueError(f"{entry.name}: a query file holds SQL and is named after it")
        queries.append(query)
    return tuple(queries)


# --- lookalikes: FAISS over the re-ID pool ----------------------------------------------

LOOKALIKES = parse_header(
    """\
-- name: lookalikes
-- description: The animals whose re-ID pool looks most like a given animal's: the ones the
-- description: linker could take it for (near-twins, litter-mates), wherever they live. Each
-- description: of the animal's exemplars is searched in the pool's FAISS index; every animal
-- description: found among the nearest is scored the way linking scores a tracklet (mean of
-- description: its best 3 exemplar similarities, cosine) and averaged over the exemplars.
-- description: closest_pair_cos: its exemplar closest to one of the animal's.
-- param: animal text -- the animal to compare
-- param: k integer = 5 [1, 50] -- how many look-alikes to list
""",
    "cohorts.py",
)


def lookalike_animals(record: Record, animal_id: str, k: int, backend: str = "faiss") -> pa.Table:
    """Return the k animals whose pool exemplars are closest to the animal's, best first.

    `backend` "faiss" reads the pool's stored index; "exact" searches with numpy (the oracle).
    """
    animals = record.read_visible("animals", ["animal_id", "pen_id", "status", "merged_into"])
    rows = {r["animal_id"]: r for r in animals.to_pylist()}
    if animal_id not in rows:
        raise UnknownAnimal(animal_id)
    if rows[animal_id]["merged_into"]:
        merged_into = rows[animal_id]["merged_into"]
        raise InvalidInput(f"animal {animal_id} was merged into {merged_into}: ask about it")
    pool = Pool.from_arrow(
        record.dataset("pool").to_table(),
        record.embedder.dim,
        DEFAULT_EXEMPLARS_PER_ANIMAL,
    )
    own = pool.animals.get(animal_id)
    if own is None:
        raise InvalidInput(
            f"animal {animal_id} has no exemplars in the re-ID pool yet (none of its links "
            "was confident enough): there is no look to compare"
        )
    index = _pool_index(record, pool, backend)
    # Its own exemplars come first among the nearest: search past them, k animals' worth.
    # Deeper than the IVF mode is calibrated for (recall@10), so on a pool past the IVF
    # threshold a far look-alike can be missed; the near ones, which matter, are found.
    depth = min(len(index), len(own.exemplar_id) + pool.per_animal * k)
    found = index.search(np.ascontiguousarray(own.vectors, dtype=np.float32), depth)
    owners = pool.owners()
    closest: dict[str, float] = {}  # candidate -> its closest exemplar pair, cosine
    for ids, scores in zip(found.ids, found.scores, strict=True):
        for i, score in zip(ids, scores, strict=True):
            other = owners.get(int(i), animal_id)
            if other != animal_id:
                closest[other] = max(closest.get(other, -1.0), float(score))
    candidates = sorted(closest)
    similarity = pool.scores(own.vectors, candidates).mean(axis=0)  # (candidates,)
    scored = [(a, float(s)) for a, s in zip(candidates, similarity, strict=True)]
    ranked = sorted(scored, key=lambda c: (-c[1], c[0]))[:k]
    return pa.table(
        {
            "rank": pa.array(range(1, len(ranked) + 1), pa.int32()),
            "animal_id": pa.array([a for a, _ in ranked], pa.string()),
            "pen_id": pa.array([rows.get(a, {}).get("pen_id") for a, _ in ranked], pa.string()),
            "similarity_cos": pa.array([round(s, 4) for _, s in ranked], pa.float64()),
            "closest_pair_cos": pa.array([round(closest[a], 4) for a, _ in ranked], pa.float64()),
            "exemplars": pa.array(
                [len(pool.animals[a].exemplar_id) for a, _ in ranked], pa.int32()
            ),
        }
    )


def _pool_index(record: Record, pool: Pool, backend: str) -> EmbeddingIndex:
    if backend == "faiss":
        return open_pool_index(record, pool)
    index = make_index(pool.dim, len(pool), backend)
    ids, vectors = pool.vectors_by_id()
    if len(ids):
        index.add(ids, vectors)
    return index


def _run_lookalikes(record: Record, values: Mapping[str, ParamValue]) -> pa.Table:
    animal, k = values["animal"], values["k"]
    assert isinstance(animal, str) and isinstance(k, int)
    return lookalike_animals(record, animal, k)


_PYTHON_QUERIES: dict[str, Callable[[Record, Mapping[str, ParamValue]], pa.Table]] = {
    LOOKALIKES.name: _run_lookalikes
}
