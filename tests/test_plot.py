"""The timeline figure: a real PNG from hand-built days and events tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from PIL import Image

from herdrecord.errors import InvalidInput
from herdrecord.events.store import current_events
from herdrecord.lookup.plot import _days_arrays, _draw_panels, _events, plot_timeline
from herdrecord.store.record import Record
from herdrecord.store.schema import DEFAULT_BEHAVIOURS, days_schema, events_schema

START = date(2026, 3, 2)
ANIMAL = "pig-0007"
SIZE_PX = (1200, 900)


def make_days(
    n: int,
    *,
    anomaly_days: tuple[int, ...] = (),
    weights: bool = True,
    animal_id: str = ANIMAL,
    seed: int = 0,
) -> pa.Table:
    """Return `n` stored days of a pig, more lying on flagged days; with `weights`, add the
    `weight_est_kg` column the way `read_days` does: ~30 kg gaining 0.8 kg/day."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        flagged = i in anomaly_days
        share = rng.dirichlet(np.ones(len(DEFAULT_BEHAVIOURS)) * 4)
        if flagged:
            share[0] += 1.0  # lying_lateral up
            share /= share.sum()
        observed = 600.0 + 200.0 * rng.random()
        minutes = observed * share
        lying = float(minutes[:2].sum())
        rows.append(
            {
                "animal_id": animal_id,
                "day": START + timedelta(days=i),
                "pen_id": "pen-03",
                "n_tracklets": 40,
                "observed_min": observed,
                "behaviour_min": [
                    {"behaviour": b, "minutes": float(m)}
                    for b, m in zip(DEFAULT_BEHAVIOURS, minutes, strict=True)
                ],
                "lying_min": lying,
                "lying_share": lying / observed,
                "eating_min": float(minutes[5]),
                "activity_index": float(minutes[4:].sum() / observed),
                "distance_px": 1e4,
                "mean_speed_px_s": 3.0,
                "walking_speed_px_s": 12.0,
                "lying_bouts": 9,
                "lying_bout_mean_min": 40.0,
                "gait_mean": None,
                "gait_n": 0,
                "area_px": 5e4,
                "keyframes": [],
                "link_confidence": 0.9,
                "anomaly_z": 3.1 if flagged else None,
                "anomalies": ["lying_up", "activity_down"] if flagged else [],
                "derived_at": datetime(2027, 1, 1, tzinfo=UTC),
            }
        )
    table = pa.Table.from_pylist(rows, schema=days_schema())
    if not weights:
        return table
    kg = 30.0 + 0.8 * np.arange(n) + rng.normal(0, 1.5, n)
    return table.append_column(pa.field("weight_est_kg", pa.float32()), pa.array(kg, pa.float32()))


def make_events(specs: list[tuple[int, str, float | None, str | None]]) -> pa.Table:
    """Return events from (day index, kind, value, code), at 09:00 on that day."""
    rows = [
        {
            "event_id": f"ev-{n}",
            "animal_id": ANIMAL,
            "kind": kind,
            "at": datetime(START.year, START.month, START.day, 9, tzinfo=UTC) + timedelta(days=i),
            "value": value,
            "scale": "0-3" if kind == "lameness" else None,
            "code": code,
            "note": "off feed in the morning, ate by noon" if kind == "note" else None,
            "author": "test",
            "recorded_at": datetime(2027, 1, 1, tzinfo=UTC),
            "supersedes": None,
            "unit": "kg" if kind == "weight" else None,
            "result": None,
            "withdrawal_days": None,
            "retracted": None,
        }
        for n, (i, kind, value, code) in enumerate(specs)
    ]
    return pa.Table.from_pylist(rows, schema=events_schema())


def grower_events(n_days: int) -> pa.Table:
    """Return weekly scale weights and lameness scores with one lameness episode."""
    specs: list[tuple[int, str, float | None, str | None]] = []
    for i in range(0, n_days, 7):
        specs.append((i, "weight", 30.0 + 0.8 * i, None))
        specs.append((i, "lameness", 0.0, None))
    specs += [
        (20, "lameness", 2.0, None),
        (20, "diagnosis", None, "LAME-FOOT"),
        (20, "treatment", None, "MELOXICAM"),
        (35, "move", None, "pen-05"),
    ]
    return make_events(specs)


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == SIZE_PX
        return np.asarray(image.convert("RGB"))


def packed(pixels: np.ndarray) -> np.ndarray:
    """Return each pixel's RGB as one integer, (pixels,) — np.unique over rows is slow."""
    rgb = pixels.reshape(-1, 3).astype(np.uint32)
    return np.unique((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2])


def n_colours(pixels: np.ndarray) -> int:
    return len(packed(pixels))


def plot(tmp_path: Path, days: pa.Table, events: pa.Table) -> np.ndarray:
    out = tmp_path / "timeline.png"
    returned = plot_timeline(
        days, events, out, title=ANIMAL, behaviours=DEFAULT_BEHAVIOURS, coverage_floor_h=6.0
    )
    assert returned == out
    return read_png(out)


def test_a_growing_pig_draws_every_behaviour_colour(tmp_path: Path) -> None:
    from matplotlib import colormaps

    days = make_days(60, anomaly_days=(19, 20, 21, 44))
    pixels = plot(tmp_path, days, grower_events(60))
    assert pixels.std() > 20
    assert n_colours(pixels) > 200
    colours = set(packed(pixels).tolist())
    for i, name in enumerate(DEFAULT_BEHAVIOURS):
        r, g, b = (round(255 * c) for c in colormaps["tab10"](i)[:3])
        assert (r << 16) | (g << 8) | b in colours, name


def test_no_days_still_writes_a_png(tmp_path: Path) -> None:
    pixels = plot(tmp_path, days_schema().empty_table(), events_schema().empty_table())
    full = plot(tmp_path, make_days(30), grower_events(30))
    assert 0 < n_colours(pixels) < n_colours(full)


@pytest.mark.parametrize(
    ("days", "events"),
    [
        pytest.param(make_days(40, weights=False), make_events([]), id="no-weights"),
        pytest.param(
            make_days(40, weights=False).append_column("weight_est_kg", pa.nulls(40, pa.float32())),
            make_events([]),
            id="uncalibrated-weights",
        ),
        pytest.param(make_days(1), make_events([(0, "weight", 31.0, None)]), id="single-day"),
        pytest.param(
            make_days(365, anomaly_days=tuple(range(100, 365, 30))),
            grower_events(365),
            id="full-year",
        ),
    ],
)
def test_edge_cases_render(tmp_path: Path, days: pa.Table, events: pa.Table) -> None:
    pixels = plot(tmp_path, days, events)
    assert n_colours(pixels) > 50


def test_breeding_and_departure_events_render(tmp_path: Path) -> None:
    events = make_events(
        [
            (3, "oestrus", None, None),
            (4, "insemination", None, "AI"),
            (25, "farrowing", 14.0, None),
            (29, "death", None, "crushed"),
            (12, "note", None, None),
            (45, "vaccination", None, "PRRS"),  # a kind the figure has no style for
        ]
    )
    pixels = plot(tmp_path, make_days(30), events)
    assert n_colours(pixels) > 50


def test_two_animals_are_refused(tmp_path: Path) -> None:
    days = pa.concat_tables([make_days(3), make_days(3, animal_id="pig-0008")])
    with pytest.raises(InvalidInput, match="one animal"):
        plot_timeline(
            days,
            make_events([]),
            tmp_path / "x.png",
            title="",
            behaviours=DEFAULT_BEHAVIOURS,
            coverage_floor_h=6.0,
        )


def test_the_events_in_force_are_labelled(tmp_path: Path, record: Record) -> None:
    """Callers pass `current_events`: a corrected score shows its new value, and an event
    withdrawn by a retraction shows nothing."""
    rows = make_events(
        [
            (5, "lameness", 3.0, None),
            (5, "lameness", 2.0, None),  # corrects ev-0
            (9, "diagnosis", None, "X"),
            (9, "diagnosis", None, None),  # retracts ev-2
        ]
    ).to_pylist()
    rows[1]["supersedes"] = "ev-0"
    rows[3].update(supersedes="ev-2", retracted=True)
    record.table("events").add(pa.Table.from_pylist(rows, schema=events_schema()))
    in_force = current_events(record)
    assert [e.label for e in _events(in_force)] == ["lame 2 (0-3)"]
    assert n_colours(plot(tmp_path, make_days(30), in_force)) > 50


def drawn(days: pa.Table, events: pa.Table) -> Figure:
    """Return the figure's panels drawn (strip, growth, budget, activity), ticks laid out."""
    fig = Figure(figsize=(12, 9), dpi=100)
    FigureCanvasAgg(fig)
    _draw_panels(fig, _days_arrays(days, DEFAULT_BEHAVIOURS, 6.0), events)
    fig.canvas.draw()
    return fig


def test_a_partial_day_is_drawn_partial(tmp_path: Path) -> None:
    days = make_days(20).to_pylist()
    day = days[10]
    # 3.1 h observed, and its estimate 10 kg below the pig's line.
    scale = 186.0 / day["observed_min"]
    days[10] = {
        **day,
        "observed_min": 186.0,
        "behaviour_min": [{**b, "minutes": b["minutes"] * scale} for b in day["behaviour_min"]],
        "weight_est_kg": day["weight_est_kg"] - 10.0,
    }
    table = pa.Table.from_pylist(days, schema=make_days(1).schema)
    fig = drawn(table, make_events([]))
    growth, budget, activity = fig.axes[1:4]
    x_partial = float(np.asarray(growth.collections[1].get_offsets())[0, 0])
    median = next(line for line in growth.get_lines() if "median" in str(line.get_label()))
    assert x_partial not in list(median.get_xdata())  # the median skips it: no dip
    assert np.all(np.diff(np.asarray(median.get_ydata())) > -1.0)
    assert np.asarray(growth.collections[1].get_facecolors()).size == 0  # hollow
    # The bar is as tall as the hours observed, not a full day, and faded.
    bars = [c for c in budget.collections if isinstance(c, PolyCollection)]
    tops = np.max([[p.vertices[:, 1].max() for p in c.get_paths()] for c in bars], axis=0)
    assert tops[10] == pytest.approx(3.1)
    assert tops[9] == pytest.approx(days[9]["observed_min"] / 60, rel=1e-3)
    alphas = np.asarray(bars[0].get_facecolors())[:, 3]
    assert alphas[10] < 0.5 and alphas[9] == 1.0
    lines = [line for line in activity.get_lines() if line.get_label() == "lying share"]
    assert len(lines[0].get_xdata()) == 19  # the share's line goes through whole days only
    assert plot(tmp_path, table, make_events([])).std() > 20


@pytest.mark.parametrize(
    ("first", "days", "months"),
    [
        (date(2026, 11, 3), 30, ("Nov", "Dec")),
        (date(2026, 10, 10), 40, ("Oct", "Nov")),
        (date(2026, 9, 1), 66, ("Sep", "Oct", "Nov")),
    ],
)
def test_the_month_axis_names_every_month(first: date, days: int, months: tuple[str]) -> None:
    table = make_days(days)
    shifted = pc_days(table, first)
    fig = drawn(shifted, make_events([]))
    labels = [t.get_text() for t in fig.axes[-1].get_xticklabels()]
    for month in months:
        assert any(label.startswith(month) for label in labels), (month, labels)


def pc_days(table: pa.Table, first: date) -> pa.Table:
    """Return the days moved to start on `first`."""
    moved = pa.array([first + timedelta(days=i) for i in range(table.num_rows)], pa.date32())
    return table.set_column(table.schema.get_field_index("day"), table.schema.field("day"), moved)
