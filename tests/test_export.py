"""The Parquet export for outcome studies on a small simulated barn: layout, row counts
against the views, window / animal / cohort filters, optional tables, provenance metadata,
the dictionary and the manifest, refusals, the CLI, and reading the export with pyarrow,
pandas, polars and DuckDB in a Python that cannot import herdrecord."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import sysconfig
import types
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from herdrecord.cli import app
from herdrecord.config import Settings
from herdrecord.errors import InvalidInput, UnknownAnimal
from herdrecord.events.rules import parse_event
from herdrecord.events.store import add_events, correct_event, retract_event
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.linking.run import link_pending
from herdrecord.query.export import ExportFilters, ExportOptions, ExportResult, export_parquet
from herdrecord.query.views import connect
from herdrecord.simulation import SimulationConfig, simulate
from herdrecord.store.record import Record, create_record, open_record

# Five days across a month end, so every time-based table has two month partitions.
CONFIG = SimulationConfig(animals=8, pens=1, days=5, seed=5, start=date(2026, 9, 28))
PER_ANIMAL = ("animals", "identifiers")  # one file each, no month partitions
ALL_TABLES = (
    *PER_ANIMAL,
    "tracklets",
    "links",
    "descriptors",
    "observations",
    "keyframes",
    "days",
    "events",
    "events_history",
)
METADATA_KEYS = {
    "herdrecord.version",
    "herdrecord.schema_version",
    "herdrecord.farm_id",
    "herdrecord.embedder",
    "herdrecord.behaviours",
    "herdrecord.exported_at",
    "herdrecord.filters",
    "herdrecord.table",
}
runner = CliRunner()


@pytest.fixture(scope="module")
def barn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated barn, ingested and linked, with weights and a score, one corrected and
    one retracted."""
    sim = simulate(CONFIG)
    path = tmp_path_factory.mktemp("export") / "herd"
    record = create_record(str(path), Settings(retention_enabled=False))
    ingest(record, (parse_json(json.dumps(b).encode(), str(b["batch_id"])) for b in sim.batches))
    link_pending(record)
    events = [
        parse_event(
            {"animal_id": animal, "kind": "weight", "at": at, "author": "scale", "value": kg}
        )
        for animal, kg in (("P00001", 31.5), ("P00002", 28.0), ("P00003", 33.0))
        for at in ("2026-09-28T09:00:00Z", "2026-10-02T09:00:00Z")
    ]
    events.append(
        parse_event(
            {
                "animal_id": "P00002",
                "kind": "lameness",
                "at": "2026-09-30T10:00:00Z",
                "author": "vet",
                "scale": "0-3",
                "value": 2,
            }
        )
    )
    ids = add_events(record, events).event_ids
    correct_event(record, ids[0], events[0].model_copy(update={"value": 32.5}))
    retract_event(record, ids[1], "scale", "weighed the wrong pig")
    return path


@pytest.fixture(scope="module")
def full(barn: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    """An export of everything, with every optional table."""
    out = tmp_path_factory.mktemp("full") / "export"
    return export_parquet(open_record(str(barn)), out, options=ExportOptions(True, True, True))


def _view_rows(record: Record, *queries: str) -> list[int]:
    """Return the rows of each query over the record's views."""
    con = connect(record)
    counts = [int(con.sql(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]) for sql in queries]
    con.close()
    return counts


def _keys(table: pa.Table) -> set[tuple[str, str]]:
    """Return the (device_id, track_id) of a table's rows."""
    return set(zip(table["device_id"].to_pylist(), table["track_id"].to_pylist(), strict=True))


def _read(result: ExportResult, table: str) -> pa.Table:
    return pq.read_table(result.out_dir / table)


def test_layout_and_rows_match_the_views(barn: Path, full: ExportResult) -> None:
    record = open_record(str(barn))
    out = full.out_dir
    assert (out / "animals" / "animals.parquet").is_file()
    for table in ALL_TABLES[len(PER_ANIMAL) :]:
        months = sorted(p.name for p in (out / table).iterdir())
        assert months == ["month=2026-09", "month=2026-10"], table
        for month in months:
            name = month.removeprefix("month=")
            assert [p.name for p in (out / table / month).iterdir()] == [f"{table}-{name}.parquet"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*ALL_TABLES, "data-dictionary.md", "manifest.json"]
    )
    assert [p.name for p in out.parent.iterdir()] == ["export"]  # no staging left behind
    views = {name: f"SELECT * FROM {name}" for name in ALL_TABLES}
    views["descriptors"] = "SELECT * FROM tracklets"
    counts = _view_rows(record, *views.values())
    for table, count in zip(views, counts, strict=True):
        assert _read(full, table).num_rows == count == full.tables[table].rows, table
    assert full.tables["events"].rows == 6 and full.tables["events_history"].rows == 9
    tracklets = _read(full, "tracklets")
    assert {"animal_id", "link_score", "link_method", "duration_s", "day", "month"} <= set(
        tracklets.column_names
    )
    assert "descriptor" not in tracklets.column_names
    assert tracklets.schema.field("start").type == pa.timestamp("us", tz="UTC")
    assert pc.all(pc.equal(tracklets["month"], pc.strftime(tracklets["day"], "%Y-%m"))).as_py()
    assert "weight_est_kg" in _read(full, "days").column_names


def test_every_file_carries_its_provenance(barn: Path, full: ExportResult) -> None:
    record = open_record(str(barn))
    exported_at = None
    for table in full.tables.values():
        for file in table.files:
            metadata = {
                k.decode(): v.decode()
                for k, v in (pq.read_schema(full.out_dir / file.path).metadata or {}).items()
                if k.startswith(b"herdrecord.")
            }
            assert set(metadata) == METADATA_KEYS
            assert metadata["herdrecord.table"] == table.name
            assert json.loads(metadata["herdrecord.embedder"]) == {
                "name": record.embedder.name,
                "dim": record.embedder.dim,
                "metric": record.embedder.metric,
            }
            assert json.loads(metadata["herdrecord.behaviours"]) == list(record.behaviours)
            assert metadata["herdrecord.schema_version"] == str(record.schema_version)
            assert metadata["herdrecord.farm_id"] == "farm-a"
            assert json.loads(metadata["herdrecord.filters"]) == ExportFilters().to_json()
            exported_at = exported_at or metadata["herdrecord.exported_at"]
            assert metadata["herdrecord.exported_at"] == exported_at  # one time for the export
    assert datetime.fromisoformat(str(exported_at)).tzinfo is not None
    schema = pq.read_schema(full.out_dir / full.tables["tracklets"].files[0].path)
    assert b"latest link" in (schema.field("animal_id").metadata or {})[b"doc"]


def test_manifest_and_dictionary_describe_the_files(full: ExportResult) -> None:
    manifest = json.loads((full.out_dir / "manifest.json").read_text())
    assert manifest["format"] == "herdrecord-export/1"
    assert manifest["filters"] == {"from": None, "to": None, "animals": None, "cohort": None}
    assert manifest["embedder"]["dim"] == 384 and manifest["farm_id"] == "farm-a"
    assert list(manifest["tables"]) == list(full.tables)
    for name, table in manifest["tables"].items():
        assert table["partitioning"] == (None if name in PER_ANIMAL else "month")
        assert table["rows"] == sum(f["rows"] for f in table["files"]) == full.tables[name].rows
        for file in table["files"]:
            path = full.out_dir / file["path"]
            assert path.stat().st_size == file["size_bytes"]
            assert pq.read_metadata(path).num_rows == file["rows"]
    dictionary = (full.out_dir / "data-dictionary.md").read_text()
    for heading in ("## `tracklets`", "## `days`", "## `events`", "## The export"):
        assert heading in dictionary
    assert "| `events_history` | `in_force` |" in dictionary
    assert "FLOAT[384]" in dictionary


def test_events_in_force_and_their_history(full: ExportResult) -> None:
    events = _read(full, "events")
    history = _read(full, "events_history")
    in_force = history.filter(pc.field("in_force"))
    assert sorted(in_force["event_id"].to_pylist()) == sorted(events["event_id"].to_pylist())
    assert "retracted" not in events.column_names
    assert history.filter(pc.field("retracted")).num_rows == 1
    corrected = events.filter(pc.is_valid(events["supersedes"]))
    assert corrected["value"].to_pylist() == [32.5]


def test_keyframes_carry_their_jpegs(barn: Path, full: ExportResult) -> None:
    keyframes = _read(full, "keyframes")
    assert keyframes.schema.field("jpeg").type == pa.binary()
    sizes = [len(j) for j in keyframes["jpeg"].to_pylist()]
    assert sizes == keyframes["jpeg_bytes"].to_pylist()
    first = keyframes["jpeg"][0].as_py()
    assert Image.open(io.BytesIO(first)).format == "JPEG"
    con = connect(open_record(str(barn)))
    view = con.sql("SELECT device_id, track_id, t, animal_id FROM keyframes").fetchall()
    exported = keyframes.select(["device_id", "track_id", "t", "animal_id"]).to_pylist()
    assert sorted(view, key=str) == sorted((tuple(r.values()) for r in exported), key=str)


def test_descriptors_are_the_record_vectors_as_float32(barn: Path, full: ExportResult) -> None:
    record = open_record(str(barn))
    descriptors = _read(full, "descriptors")
    assert descriptors.schema.field("descriptor").type == pa.list_(pa.float32(), 384)
    stored = record.read_visible("tracklets", ["device_id", "track_id", "descriptor"])
    by_key = {
        (d, t): v
        for d, t, v in zip(
            stored["device_id"].to_pylist(),
            stored["track_id"].to_pylist(),
            stored["descriptor"].to_numpy(zero_copy_only=False),
            strict=True,
        )
    }
    for row in descriptors.slice(0, 20).to_pylist():
        expected = np.asarray(by_key[(row["device_id"], row["track_id"])], dtype=np.float32)
        assert np.array_equal(np.asarray(row["descriptor"], dtype=np.float32), expected)
    metadata = pq.read_schema(full.out_dir / full.tables["descriptors"].files[0].path).metadata
    assert json.loads((metadata or {})[b"herdrecord.embedder"])["name"] == "dinov3-vits16"


def test_a_window_keeps_each_table_to_its_days(barn: Path, tmp_path: Path) -> None:
    record = open_record(str(barn))
    window = ExportFilters(first_day=date(2026, 9, 30), last_day=date(2026, 10, 1))
    result = export_parquet(record, tmp_path / "x", window, ExportOptions(observations=True))
    assert set(result.tables) == {
        *PER_ANIMAL,
        "tracklets",
        "links",
        "observations",
        "days",
        "events",
        "events_history",
    }
    inside = "BETWEEN DATE '2026-09-30' AND DATE '2026-10-01'"
    expected = {
        "tracklets": f"SELECT * FROM tracklets WHERE day {inside}",
        "observations": f"SELECT * FROM observations WHERE day {inside}",
        "days": f"SELECT * FROM days WHERE day {inside}",
        "events": f"SELECT * FROM events WHERE CAST(timezone('UTC', \"at\") AS DATE) {inside}",
    }
    counts = _view_rows(record, *expected.values())
    for table, count in zip(expected, counts, strict=True):
        assert result.tables[table].rows == count > 0, table
    tracklets = _read(result, "tracklets")
    links = _read(result, "links")
    assert _keys(links) == _keys(tracklets)
    days = sorted(set(_read(result, "observations")["day"].to_pylist()))
    assert days == [date(2026, 9, 30), date(2026, 10, 1)]
    mentioned = set(tracklets["animal_id"].drop_null().to_pylist())
    mentioned |= set(_read(result, "events")["animal_id"].to_pylist())
    assert set(_read(result, "animals")["animal_id"].to_pylist()) >= mentioned
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    assert manifest["filters"]["from"] == "2026-09-30" and manifest["filters"]["to"] == "2026-10-01"


def test_an_animal_list_keeps_their_rows(barn: Path, tmp_path: Path) -> None:
    record = open_record(str(barn))
    chosen = ExportFilters(animal_ids=("P00002", "P00003"))
    result = export_parquet(record, tmp_path / "x", chosen, ExportOptions(keyframes=True))
    where = "WHERE animal_id IN ('P00002', 'P00003')"
    tables = ("tracklets", "days", "events", "events_history", "keyframes")
    counts = _view_rows(
        record,
        *(f"SELECT * FROM {table} {where}" for table in tables),
        "SELECT * FROM links SEMI JOIN (SELECT device_id, track_id FROM tracklets "
        f"{where}) USING (device_id, track_id)",
    )
    for table, count in zip(tables, counts, strict=False):
        exported = _read(result, table)
        assert set(exported["animal_id"].to_pylist()) == {"P00002", "P00003"}, table
        assert exported.num_rows == count, table
    assert _read(result, "links").num_rows == counts[-1]
    assert set(_read(result, "animals")["animal_id"].to_pylist()) >= {"P00002", "P00003"}
    metadata = pq.read_schema(result.out_dir / "animals" / "animals.parquet").metadata or {}
    assert json.loads(metadata[b"herdrecord.filters"])["animals"] == ["P00002", "P00003"]


def test_a_cohort_keeps_its_animals(
    barn: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for herdrecord.query.cohorts with the agreed signature, run_query(record, name,
    # params) -> table with animal_id: the real module was not there when this was written.
    asked: list[tuple[str, dict[str, str]]] = []

    def run_query(record: Record, name: str, params: dict[str, str]) -> pa.Table:
        asked.append((name, params))
        return pa.table({"animal_id": ["P00004", "P00004"], "lying_share": [0.5, 0.6]})

    cohorts = types.ModuleType("herdrecord.query.cohorts")
    cohorts.run_query = run_query  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "herdrecord.query.cohorts", cohorts)
    filters = ExportFilters(cohort="lame", cohort_params={"min_score": "2"})
    result = export_parquet(open_record(str(barn)), tmp_path / "x", filters)
    assert asked == [("lame", {"min_score": "2"})]
    assert set(_read(result, "tracklets")["animal_id"].to_pylist()) == {"P00004"}
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    assert manifest["filters"]["cohort"] == {"name": "lame", "params": {"min_score": "2"}}


def test_a_cohort_without_the_cohorts_module_is_a_clear_error(
    barn: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "herdrecord.query.cohorts", None)  # import fails
    with pytest.raises(InvalidInput, match="named cohorts are not available"):
        export_parquet(open_record(str(barn)), tmp_path / "x", ExportFilters(cohort="lame"))


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"first_day": date(2026, 10, 2), "last_day": date(2026, 9, 30)}, "is after to"),
        ({"animal_ids": ("P00001",), "cohort": "lame"}, "not both"),
        ({"animal_ids": ()}, "list of animals is empty"),
        ({"cohort_params": {"a": "1"}}, "without a cohort"),
    ],
)
def test_filters_that_make_no_sense_are_refused(filters: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ExportFilters(**filters)


def test_unknown_animals_and_a_full_directory_are_refused(barn: Path, tmp_path: Path) -> None:
    record = open_record(str(barn))
    with pytest.raises(UnknownAnimal, match="'P99999'"):
        export_parquet(record, tmp_path / "a", ExportFilters(animal_ids=("P00001", "P99999")))
    with pytest.raises(InvalidInput, match="no animals X1, X2"):
        export_parquet(record, tmp_path / "a", ExportFilters(animal_ids=("X1", "X2")))
    assert not (tmp_path / "a").exists()
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not empty"):
        export_parquet(record, full)
    assert [p.name for p in full.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export_parquet(record, empty).tables["animals"].rows == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "full"]


def test_the_cli_exports_with_progress_and_a_summary(barn: Path, tmp_path: Path) -> None:
    out = tmp_path / "x"
    args = ["export", str(barn), "--out", str(out), "--from", "2026-10-01", "--to", "2026-10-02"]
    result = runner.invoke(app, [*args, "--animals", "P00001, P00005", "--with-embeddings"])
    assert result.exit_code == 0, result.output
    summary = result.output.strip().splitlines()[-1]
    assert "files" in summary and " MB in " in summary
    assert "exported" in result.output and "descriptors" in result.output
    assert sorted(p.name for p in (out / "tracklets").iterdir()) == ["month=2026-10"]
    filters = json.loads((out / "manifest.json").read_text())["filters"]
    assert filters["animals"] == ["P00001", "P00005"] and filters["from"] == "2026-10-01"
    for extra, message in [
        ([], "exists and is not empty"),
        (["--from", "01/10/2026"], "--from '01/10/2026': expected a date as YYYY-MM-DD"),
        (["--cohort", "lame", "--param", "oops"], "--param 'oops': expected KEY=VALUE"),
        (["--animals", "P00001", "--cohort", "lame"], "not both"),
    ]:
        result = runner.invoke(app, ["export", str(barn), "--out", str(out), *extra])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


# Run in a separate Python that cannot import herdrecord:
# - `-I -S`: isolated mode leaves out PYTHONPATH, the user site and the script's directory,
#   and no `site` means no .pth files, so the editable install's path to src/ is never added;
# - the venv's site-packages is put on sys.path by hand (a plain path entry processes no
#   .pth files), so pyarrow, pandas, polars and DuckDB import as usual;
# - site-packages still holds herdrecord/_migrations (copied there by the wheel build), which
#   would import as an empty namespace package, so a finder first in sys.meta_path refuses
#   every herdrecord module;
# - it runs in the export's directory, outside the repository;
# and it checks that `import herdrecord` fails before it reads anything.
READER = r"""
import importlib.abc, json, sys

export_dir, *site_dirs = sys.argv[1:]


class HideHerdrecord(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "herdrecord" or name.startswith("herdrecord."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, HideHerdrecord())
sys.path.extend(site_dirs)
try:
    import herdrecord
except ModuleNotFoundError:
    hidden = True
else:
    hidden = False

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq

manifest = json.load(open(f"{export_dir}/manifest.json"))
found = {"hidden": hidden, "tables": {}}
for name, entry in manifest["tables"].items():
    path = f"{export_dir}/{name}"
    hive = entry["partitioning"] == "month"
    files = f"{path}/**/*.parquet" if hive else f"{path}/*.parquet"
    first = f"{export_dir}/{entry['files'][0]['path']}"
    frames = {
        "pyarrow": pq.read_table(path),
        "pandas": pd.read_parquet(path),
        "polars": pl.read_parquet(path, hive_partitioning=hive),
        "duckdb": duckdb.sql(
            f"SELECT * FROM read_parquet('{files}', hive_partitioning = {str(hive).lower()})"
        ),
    }
    rows = {
        "pyarrow": frames["pyarrow"].num_rows,
        "pandas": len(frames["pandas"]),
        "polars": frames["polars"].height,
        "duckdb": duckdb.sql(f"SELECT count(*) FROM read_parquet('{files}')").fetchall()[0][0],
    }
    columns = {
        "pyarrow": frames["pyarrow"].column_names,
        "pandas": list(frames["pandas"].columns),
        "polars": frames["polars"].columns,
        "duckdb": frames["duckdb"].columns,
    }
    months = {
        "pyarrow": sorted(set(map(str, frames["pyarrow"]["month"].to_pylist()))) if hive else [],
        "pandas": sorted(set(map(str, frames["pandas"]["month"]))) if hive else [],
        "polars": sorted(set(frames["polars"]["month"].to_list())) if hive else [],
        "duckdb": sorted(m for (m,) in frames["duckdb"].select("month").distinct().fetchall())
        if hive
        else [],
    }
    kv = duckdb.sql(f"SELECT key, value FROM parquet_kv_metadata('{first}')").fetchall()
    metadata = {
        "pyarrow": {
            k.decode(): v.decode()
            for k, v in pq.read_schema(first).metadata.items()
            if k.startswith(b"herdrecord.")
        },
        "polars": {
            k: v for k, v in pl.read_parquet_metadata(first).items() if k.startswith("herdrecord.")
        },
        "duckdb": {
            bytes(k).decode(): bytes(v).decode()
            for k, v in kv
            if bytes(k).startswith(b"herdrecord.")
        },
    }
    found["tables"][name] = {
        "rows": rows, "columns": columns, "months": months, "metadata": metadata
    }
    if name == "descriptors":
        found["descriptor_lengths"] = {
            "pyarrow": len(frames["pyarrow"]["descriptor"][0].as_py()),
            "pandas": len(frames["pandas"]["descriptor"].iloc[0]),
            "polars": len(frames["polars"]["descriptor"][0]),
            "duckdb": frames["duckdb"].select("len(descriptor)").fetchall()[0][0],
        }
        found["descriptor_types"] = {
            "pandas": str(frames["pandas"]["descriptor"].iloc[0].dtype),
            "polars": str(frames["polars"].schema["descriptor"]),
            "duckdb": str(frames["duckdb"].select("descriptor").types[0]),
        }
    if name == "keyframes":
        found["jpeg_starts"] = {
            "pandas": frames["pandas"]["jpeg"].iloc[0][:2].hex(),
            "polars": frames["polars"]["jpeg"][0][:2].hex(),
            "duckdb": bytes(frames["duckdb"].select("jpeg").fetchall()[0][0][:2]).hex(),
        }
print(json.dumps(found))
"""


def test_the_export_reads_without_herdrecord(full: ExportResult) -> None:
    site_dirs = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", READER, str(full.out_dir), *site_dirs],
        cwd=full.out_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["hidden"] is True
    assert set(found["tables"]) == set(ALL_TABLES)
    for name, table in found["tables"].items():
        expected = full.tables[name]
        assert set(table["rows"].values()) == {expected.rows}, name
        months = [] if name in PER_ANIMAL else ["2026-09", "2026-10"]
        assert all(m == months for m in table["months"].values()), name
        assert all(("month" in c) == bool(months) for c in table["columns"].values()), name
        local = pq.read_schema(full.out_dir / expected.files[0].path).metadata or {}
        wanted = {k.decode(): v.decode() for k, v in local.items() if k.startswith(b"herdrecord.")}
        assert set(wanted) == METADATA_KEYS
        assert all(m == wanted for m in table["metadata"].values()), name
    assert set(found["descriptor_lengths"].values()) == {384}
    assert found["descriptor_types"]["pandas"] == "float32"
    assert "Float32" in found["descriptor_types"]["polars"]
    assert found["descriptor_types"]["duckdb"].startswith("FLOAT")
    assert set(found["jpeg_starts"].values()) == {"ffd8"}


def test_export_time_is_recorded_in_utc(full: ExportResult) -> None:
    manifest = json.loads((full.out_dir / "manifest.json").read_text())
    exported_at = datetime.fromisoformat(manifest["exported_at"])
    assert exported_at.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - exported_at).total_seconds()) < 600


def test_a_window_with_nothing_in_it_keeps_every_table_empty(barn: Path, tmp_path: Path) -> None:
    out = tmp_path / "late"
    args = ["export", str(barn), "--out", str(out), "--from", "2026-12-05", "--with-keyframes"]
    result = runner.invoke(app, [*args, "--with-embeddings", "--with-observations"])
    assert result.exit_code == 0, result.output
    assert (
        "nothing in the record matches --from 2026-12-05: every table of the export is empty "
        "(its columns only)"
    ) in result.stderr
    assert "nothing in the record matches" not in result.stdout
    record = open_record(str(barn))
    con = connect(record)
    for table in ALL_TABLES:
        [file] = list((out / table).iterdir())
        assert file.name == f"{table}.parquet", table
        frame = pd.read_parquet(out / table)
        assert len(frame) == 0, table
        schema = pq.read_schema(file)
        assert schema.metadata and schema.metadata[b"herdrecord.table"] == table.encode()
        if table in ("tracklets", "days", "events", "animals"):
            view = con.sql(f"SELECT * FROM {table} LIMIT 0").to_arrow_table().schema
            assert schema.names == view.names, table
    assert pq.read_schema(out / "keyframes" / "keyframes.parquet").field("jpeg").type == pa.binary()
    descriptor = pq.read_schema(out / "descriptors" / "descriptors.parquet").field("descriptor")
    assert descriptor.type == pa.list_(pa.float32(), 384)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tables"]["events"]["files"][0]["rows"] == 0
    full_run = runner.invoke(app, ["export", str(barn), "--out", str(tmp_path / "all")])
    assert "nothing in the record matches" not in full_run.output


def test_export_takes_p_for_a_cohort_parameter(barn: Path, tmp_path: Path) -> None:
    out = tmp_path / "lame"
    result = runner.invoke(
        app, ["export", str(barn), "--out", str(out), "--cohort", "lameness", "-p", "min_score=9"]
    )
    assert result.exit_code == 2, result.output
    assert "min_score=9 is out of range" in result.output  # -p reached the cohort's parameters
    result = runner.invoke(
        app, ["export", str(barn), "--out", str(out), "--cohort", "lameness", "-p", "min_score=3"]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["filters"]["cohort"] == {"name": "lameness", "params": {"min_score": "3"}}
