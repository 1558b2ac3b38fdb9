"""The animal page's charts as inline SVG, drawn on the server.

A chart never carries more than a few hundred marks, whatever the period: days are averaged
into equal buckets first (`bucket_days`), so a year costs the browser what a month does.

A day observed for less than the coverage floor (`HERDRECORD_DAY_COVERAGE_FLOOR_H`) is
partial and looks it: its bar is only as tall as its observed hours (every bar is), and its
weight estimate is a hollow point off the line, so a short day's noise never reads as a change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from markupsafe import Markup, escape

GROWTH_POINTS = 240  # most points of the estimated-weight line
BUDGET_BARS = 120  # most bars of the time-budget chart
WIDTH, HEIGHT = 960, 260
# The unit label sits in the top margin, above the highest tick label (which is centred on
# the top grid line at y = TOP), so the two never overlap.
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 30, 28
UNIT_Y = 13

# One colour per behaviour class, lying in blues, upright in greens, feeding in oranges.
BEHAVIOUR_COLOURS = {
    "lying_lateral": "#1f4e79",
    "lying_sternal": "#4a86c5",
    "sitting": "#9cc3e6",
    "standing": "#8fbf7f",
    "walking": "#3f8f3a",
    "eating": "#e08a1e",
    "drinking": "#f2c14e",
    "exploring": "#9d6ab8",
    "interacting": "#d1495b",
}
OTHER_COLOUR = "#999999"
EVENT_COLOURS = {
    "lameness": "#c0392b",
    "diagnosis": "#8e44ad",
    "treatment": "#2471a3",
    "move": "#117864",
    "weight": "#555555",
}
MARKED_EVENTS = ("lameness", "diagnosis", "treatment", "move", "death", "sale", "birth")


@dataclass(frozen=True)
class Bucket:
    """Consecutive days averaged into one mark."""

    first: date
    last: date
    rows: list[Mapping[str, Any]]

    @property
    def middle(self) -> date:
        """Return the bucket's middle day."""
        return self.first + (self.last - self.first) / 2


def bucket_days(rows: Sequence[Mapping[str, Any]], most: int) -> list[Bucket]:
    """Return the day rows (sorted by `day`) in at most `most` buckets of equal calendar
    length; a day without a row leaves its bucket thinner, never shifts the others."""
    if not rows:
        return []
    first, last = rows[0]["day"], rows[-1]["day"]
    span = (last - first).days + 1
    width = max(1, math.ceil(span / most))
    buckets: dict[int, list[Mapping[str, Any]]] = {}
    for row in rows:
        buckets.setdefault((row["day"] - first).days // width, []).append(row)
    return [
        Bucket(
            first + timedelta(days=i * width),
            min(last, first + timedelta(days=i * width + width - 1)),
            found,
        )
        for i, found in sorted(buckets.items())
    ]


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


class _Frame:
    """Maps days and values to the chart's pixels."""

    def __init__(self, start: date, end: date, low: float, high: float) -> None:
        self.start, self.days = start, max(1, (end - start).days + 1)
        self.low, self.high = low, high if high > low else low + 1.0

    def x(self, day: date) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * ((day - self.start).days + 0.5) / self.days

    def day_width(self) -> float:
        return (WIDTH - LEFT - RIGHT) / self.days

    def y(self, value: float) -> float:
        share = (value - self.low) / (self.high - self.low)
        return TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - share)


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    step = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(step)) if step > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= step)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _date_ticks(start: date, end: date) -> list[date]:
    span = (end - start).days + 1
    if span <= 14:
        return [start + timedelta(days=i) for i in range(span)]
    if span <= 120:
        monday = start + timedelta(days=(7 - start.weekday()) % 7)
        return [monday + timedelta(weeks=i) for i in range((end - monday).days // 7 + 1)]
    ticks, month = [], date(start.year, start.month, 1)
    while month <= end:
        if month >= start:
            ticks.append(month)
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return ticks[:: max(1, len(ticks) // 12)]


def _axes(frame: _Frame, unit: str, ticks: list[float], fmt: str = "{:g}") -> list[str]:
    parts = []
    for value in ticks:
        y = frame.y(value)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{fmt.format(value)}</text>"
        )
    parts.append(f'<text class="unit" x="4" y="{UNIT_Y}" text-anchor="start">{escape(unit)}</text>')
    end = frame.start + timedelta(days=frame.days - 1)
    for day in _date_ticks(frame.start, end):
        x = frame.x(day)
        label = day.strftime("%d %b") if frame.days <= 120 else day.strftime("%b %Y")
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{label}</text>'
        )
    return parts


def _anomaly_bands(frame: _Frame, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Return shaded spans over runs of flagged days (a run: consecutive flagged days)."""
    spans: list[tuple[date, date, set[str]]] = []
    for row in rows:
        if not row.get("anomalies"):
            continue
        if spans and (row["day"] - spans[-1][1]).days <= 1:
            spans[-1] = (spans[-1][0], row["day"], spans[-1][2] | set(row["anomalies"]))
        else:
            spans.append((row["day"], row["day"], set(row["anomalies"])))
    width = frame.day_width()
    return [
        f'<rect class="anomaly" x="{frame.x(a) - width / 2:.1f}" y="{TOP}" '
        f'width="{max(2.0, width * ((b - a).days + 1)):.1f}" height="{HEIGHT - TOP - BOTTOM}">'
        f"<title>{a}{'' if a == b else f' to {b}'}: {escape(', '.join(sorted(flags)))}</title>"
        "</rect>"
        for a, b, flags in spans
    ]


def _event_markers(frame: _Frame, events: Sequence[Mapping[str, Any]]) -> list[str]:
    parts = []
    for event in events:
        if event["kind"] not in MARKED_EVENTS:
            continue
        day = event["at"].date()
        if not frame.start <= day < frame.start + timedelta(days=frame.days):
            continue
        x = frame.x(day)
        colour = EVENT_COLOURS.get(event["kind"], "#333333")
        parts.append(
            f'<g class="marker" data-kind="{event["kind"]}">'
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
            f'stroke="{colour}"/>'
            f'<circle cx="{x:.1f}" cy="{TOP + 4}" r="4" fill="{colour}"/>'
            f"<title>{escape(event_label(event))}</title></g>"
        )
    return parts


def event_label(event: Mapping[str, Any]) -> str:
    """Return one line saying what an event was: '2026-10-02 lameness 2 (0-3)'."""
    parts = [event["at"].strftime("%Y-%m-%d"), event["kind"]]
    if event.get("value") is not None:
        value = event["value"]
        parts.append(f"{value:g}" + (f" {event['unit']}" if event.get("unit") else ""))
    if event.get("scale"):
        parts.append(f"({event['scale']})")
    if event.get("code"):
        parts.append(str(event["code"]))
    if event.get("note"):
        parts.append(f"— {event['note']}")
    return " ".join(parts)


def _svg(label: str, parts: list[str], chart: str) -> Markup:
    body = "".join(parts)
    return Markup(
        f'<svg class="chart" data-chart="{chart}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="none">{body}</svg>'
    )


def _observed_min(row: Mapping[str, Any]) -> float:
    """Return a day's observed minutes (its behaviours' sum where the row lacks them)."""
    if row.get("observed_min") is not None:
        return float(row["observed_min"])
    return sum(float(e["minutes"] or 0.0) for e in row.get("behaviour_min") or [])


def is_partial(row: Mapping[str, Any], coverage_floor_h: float) -> bool:
    """Return whether a day row was observed for less than the coverage floor."""
    return _observed_min(row) < 60.0 * coverage_floor_h


def growth_chart(
    rows: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    start: date,
    end: date,
    *,
    coverage_floor_h: float,
) -> Markup:
    """Return the growth chart: estimated weight of whole days (a line, bucket means),
    partial days' estimates (hollow points, off the line), scale weights (dots), event
    markers and flagged days shaded."""
    whole = [r for r in rows if not is_partial(r, coverage_floor_h)]
    line = [
        (b.middle, _mean([r.get("weight_est_kg") for r in b.rows]))
        for b in bucket_days(whole, GROWTH_POINTS)
    ]
    partial = [
        (r["day"], float(r["weight_est_kg"]), _observed_min(r) / 60)
        for r in rows
        if is_partial(r, coverage_floor_h) and r.get("weight_est_kg") is not None
    ]
    if len(rows) > GROWTH_POINTS:
        partial = []  # a long period's buckets would hide them anyway: the line skips them
    scale = [(r["day"], r["scale_weight_kg"]) for r in rows if r.get("scale_weight_kg")]
    values = [v for _, v in line if v is not None] + [v for _, v in scale]
    values += [kg for _, kg, _ in partial]
    if values:
        pad = max(1.0, (max(values) - min(values)) * 0.08)
        low, high = max(0.0, min(values) - pad), max(values) + pad
    else:
        low, high = 0.0, 100.0
    frame = _Frame(start, end, low, high)
    parts = _anomaly_bands(frame, rows)
    parts += _axes(frame, "kg", _nice_ticks(low, high))
    segments: list[list[str]] = [[]]
    for day, kg in line:  # a gap in the estimate breaks the line
        if kg is None:
            segments.append([])
        else:
            segments[-1].append(f"{frame.x(day):.1f},{frame.y(kg):.1f}")
    parts += [
        f'<polyline class="estimate" points="{" ".join(points)}"/>' for points in segments if points
    ]
    parts += [
        f'<circle class="partial" cx="{frame.x(day):.1f}" cy="{frame.y(kg):.1f}" r="3.5">'
        f"<title>{day}: {kg:.1f} kg estimated from a partial day ({hours:.1f} h observed); "
        "not part of the line</title></circle>"
        for day, kg, hours in partial
    ]
    parts += [
        f'<circle class="scale" cx="{frame.x(day):.1f}" cy="{frame.y(kg):.1f}" r="4">'
        f"<title>{day}: {kg:.1f} kg on the scale</title></circle>"
        for day, kg in scale
    ]
    parts += _event_markers(frame, events)
    if not values:
        parts.append(
            f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
            "no weight estimate yet: the record needs scale weighings to calibrate</text>"
        )
    return _svg("Growth: estimated and scale weight, kg", parts, "growth")


def budget_chart(
    rows: Sequence[Mapping[str, Any]],
    behaviours: Sequence[str],
    events: Sequence[Mapping[str, Any]],
    start: date,
    end: date,
    *,
    coverage_floor_h: float,
) -> Markup:
    """Return the behaviour time budget: per day (or bucket of days: their mean) a bar of
    the hours observed, split into the hours of each behaviour, with event markers and
    flagged days; a bar under the coverage floor is marked partial."""
    frame = _Frame(start, end, 0.0, 24.0)
    parts = _anomaly_bands(frame, rows)
    parts += _axes(frame, "hours observed per day", [0, 6, 12, 18, 24], "{:g} h")
    day_width = frame.day_width()
    for bucket in bucket_days(rows, BUDGET_BARS):
        minutes: dict[str, float] = {}
        for row in bucket.rows:
            for entry in row["behaviour_min"]:
                minutes[entry["behaviour"]] = minutes.get(entry["behaviour"], 0.0) + float(
                    entry["minutes"] or 0.0
                )
        total = sum(minutes.values())
        if total <= 0:
            continue
        days = (bucket.last - bucket.first).days + 1
        x = frame.x(bucket.first) - day_width / 2
        width = max(1.0, day_width * days - (1.0 if day_width * days > 3 else 0.0))
        span = str(bucket.first) if days == 1 else f"{bucket.first} to {bucket.last}"
        # A bucket's bar is the mean of its recorded days: hours observed, not a full 24.
        observed_h = sum(_observed_min(r) for r in bucket.rows) / 60 / len(bucket.rows)
        partial = observed_h < coverage_floor_h
        kind = "bar partial" if partial else "bar"
        note = " (partial day)" if partial and days == 1 else " (partial days)" if partial else ""
        top = observed_h
        for behaviour in [*behaviours, *sorted(set(minutes) - set(behaviours))]:
            share = minutes.get(behaviour, 0.0) / total
            if share <= 0:
                continue
            colour = BEHAVIOUR_COLOURS.get(behaviour, OTHER_COLOUR)
            y = frame.y(top)
            hours = share * observed_h
            parts.append(
                f'<rect class="{kind}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
                f'height="{frame.y(top - hours) - y:.2f}" fill="{colour}">'
                f"<title>{span}: {escape(behaviour)} {hours:.1f} h of {observed_h:.1f} h "
                f"observed{note}, {share:.0%}</title></rect>"
            )
            top -= hours
    parts += _event_markers(frame, events)
    return _svg("Behaviour time budget per day", parts, "budget")
