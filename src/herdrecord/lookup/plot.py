"""The timeline figure of one animal: growth, behaviour time budget, activity and events.

A day observed for less than the coverage floor is partial and drawn so: its behaviour bar
is only as tall as its observed hours (every bar is) and faded, and its weight estimate,
lying share and activity are hollow points that no line or median goes through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from textwrap import shorten

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib import colormaps
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from herdrecord.errors import InvalidInput
from herdrecord.events.rules import BREEDING_KINDS, DEPARTURES

FIGSIZE_IN = (12.0, 9.0)
DPI = 100
PANELS_LEFT, PANELS_RIGHT = 0.07, 0.80  # figure shares; the legends sit right of the panels
WEEKLY_AFTER_DAYS = 120  # past this, daily bars are 1-2 px wide: show weekly budgets instead
ROLLING_DAYS = 7  # window of the weight median, centred, days
MARKERS_UP_TO_DAYS = 31  # shorter series get a marker per day, so a single day still shows
LABEL_ROWS = 6  # most rows of event labels in the event strip
LABEL_CHAR_PX = 5.4  # mean width of a 7-pt DejaVu Sans character at 100 dpi, px
GROWTH, ANOMALY, ACTIVITY, LYING = "#2ca02c", "#d62728", "#222222", "#3b5bdb"
OTHER_BEHAVIOUR = "other"


@dataclass(frozen=True)
class _EventStyle:
    colour: str
    marker: str
    legend: str


_STYLES = {
    "lameness": _EventStyle("#d62728", "v", "lameness"),
    "diagnosis": _EventStyle("#9467bd", "D", "diagnosis"),
    "treatment": _EventStyle("#1f77b4", "P", "treatment"),
    "move": _EventStyle("#7f7f7f", ">", "move"),
    "breeding": _EventStyle("#e377c2", "*", "breeding"),
    "departure": _EventStyle("#000000", "X", ", ".join(DEPARTURES)),
    "other": _EventStyle("#8c564b", "o", "other"),
    "sound": _EventStyle("#a0a0a0", "v", "score 0"),
}
_GROUP_OF_KIND = {
    **dict.fromkeys(BREEDING_KINDS, "breeding"),
    **dict.fromkeys(DEPARTURES, "departure"),
}


@dataclass(frozen=True)
class _Days:
    """One animal's days as arrays, sorted by day; `x` is the day's midnight as a date number."""

    x: np.ndarray  # (n,) float
    epoch_day: np.ndarray  # (n,) int, days since 1970-01-01
    weight_kg: np.ndarray  # (n,) float, NaN without an estimate
    activity: np.ndarray  # (n,) float, 0..1
    lying: np.ndarray  # (n,) float, 0..1
    minutes: np.ndarray  # (n, k) float, observed minutes per class of `classes`
    classes: tuple[str, ...]
    partial: np.ndarray  # (n,) bool, observed for less than the coverage floor
    coverage_floor_h: float
    anomalies: list[list[str]]
    anomaly_z: np.ndarray  # (n,) float, sigma, NaN without a flag


@dataclass(frozen=True)
class _Event:
    x: float  # date number
    label: str
    group: str  # key of _STYLES


@dataclass(frozen=True)
class _Placement:
    """Where a label goes: a row, and the x it starts at ("left") or ends at ("right")."""

    row: int
    x: float  # date number
    ha: str
    crowded: bool  # no row had room at the label's own x: it follows the row's last label


def plot_timeline(
    days: pa.Table,
    events: pa.Table,
    out: Path,
    *,
    title: str,
    behaviours: tuple[str, ...],
    coverage_floor_h: float,
) -> Path:
    """Draw one animal's days and events as a PNG at `out`; return `out`.

    `days` holds rows of `days_schema()` of one animal, with the `weight_est_kg` column
    `read_days` adds where it is there; `events` holds the animal's events in force, as
    `current_events(record, animal_id)` returns them (their `animal_id` is not checked: an
    animal's events include those of ids merged into it). Days observed for less than
    `coverage_floor_h` hours are drawn as partial.
    """
    animals = set(days.column("animal_id").to_pylist())
    if len(animals) > 1:
        shown = ", ".join(sorted(animals)[:3])
        raise InvalidInput(f"a timeline shows one animal, got {len(animals)}: {shown}, ...")
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI)
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=13)
    if days.num_rows == 0:
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no days recorded", ha="center", va="center", fontsize=14, color="0.4")
    else:
        _draw_panels(fig, _days_arrays(days, behaviours, coverage_floor_h), events)
    fig.savefig(out, format="png", dpi=DPI)
    return out


def _draw_panels(fig: Figure, d: _Days, events: pa.Table) -> None:
    grid = fig.add_gridspec(4, 1, height_ratios=[0.9, 2.8, 2.8, 1.5], hspace=0.1)
    fig.subplots_adjust(left=PANELS_LEFT, right=PANELS_RIGHT, top=0.94, bottom=0.06)
    strip = fig.add_subplot(grid[0])
    panels = [fig.add_subplot(grid[i], sharex=strip) for i in (1, 2, 3)]
    lo, hi = _x_limits(d.x)
    labelled = _events(events)
    shown = [e for e in labelled if lo <= e.x <= hi]
    _draw_event_strip(strip, shown, lo, hi, n_hidden=len(labelled) - len(shown))
    _draw_growth(panels[0], d, _scale_weights(events, lo, hi))
    _draw_budget(panels[1], d)
    _draw_activity(panels[2], d, lo, hi)
    for ax in panels:
        for e in shown:
            if e.group != "sound":
                ax.axvline(e.x, color=_STYLES[e.group].colour, lw=0.8, ls=":", alpha=0.7)
    for ax in [strip, *panels[:-1]]:
        ax.tick_params(labelbottom=False)
    strip.set_xlim(lo, hi)
    locator = mdates.AutoDateLocator(maxticks=14)  # type: ignore[no-untyped-call]
    formatter = _MonthNamingFormatter(locator)  # type: ignore[no-untyped-call]
    panels[-1].xaxis.set_major_locator(locator)
    panels[-1].xaxis.set_major_formatter(formatter)


class _MonthNamingFormatter(mdates.ConciseDateFormatter):
    """Concise dates that name every month drawn: the first tick of a month that has no tick
    on its first day reads 'Nov 05', not a bare '05'."""

    def format_ticks(self, values: list[float]) -> list[str]:
        labels: list[str] = super().format_ticks(values)  # type: ignore[no-untyped-call]
        shown, previous = [], None
        when_ticks = mdates.num2date(values)  # type: ignore[no-untyped-call]
        for when, label in zip(when_ticks, labels, strict=True):
            month = (when.year, when.month)
            if month != previous and not any(c.isalpha() for c in label):
                label = f"{when:%b} {label}"
            shown.append(label)
            previous = month
        return shown


def _x_limits(x: np.ndarray) -> tuple[float, float]:
    """Return the date range drawn: the days, widened to a week at least so one day reads."""
    first, last = float(x.min()), float(x.max()) + 1.0
    half = max(last - first, 7.0) / 2
    pad = max(0.5, 0.03 * half)
    middle = (first + last) / 2
    return middle - half - pad, middle + half + pad


def _days_arrays(days: pa.Table, behaviours: tuple[str, ...], coverage_floor_h: float) -> _Days:
    days = days.sort_by("day")
    lists = days.column("behaviour_min").combine_chunks()
    names = lists.flatten().field("behaviour").to_pylist()
    # Classes outside the vocabulary still fill the day: they stack on top as "other".
    extra = any(name not in behaviours for name in names)
    classes = (*behaviours, OTHER_BEHAVIOUR) if extra else behaviours
    column = {name: i for i, name in enumerate(classes)}
    minutes = np.zeros((days.num_rows, len(classes)))
    rows = pc.list_parent_indices(lists).to_numpy()
    columns = np.array([column.get(n, len(classes) - 1) for n in names], dtype=np.int64)
    values = lists.flatten().field("minutes").to_numpy(zero_copy_only=False)
    np.add.at(minutes, (rows, columns), np.nan_to_num(values.astype(float)))
    has_weight = "weight_est_kg" in days.column_names
    return _Days(
        x=_date_numbers(days.column("day")),
        epoch_day=days.column("day").cast(pa.int32()).to_numpy().astype(np.int64),
        weight_kg=_floats(days, "weight_est_kg") if has_weight else np.full(len(days), np.nan),
        activity=_floats(days, "activity_index"),
        lying=_floats(days, "lying_share"),
        minutes=minutes,
        classes=classes,
        partial=_floats(days, "observed_min") < 60.0 * coverage_floor_h,
        coverage_floor_h=coverage_floor_h,
        anomalies=days.column("anomalies").to_pylist(),
        anomaly_z=_floats(days, "anomaly_z"),
    )


def _date_numbers(times: pa.ChunkedArray) -> np.ndarray:
    """Return Arrow dates or UTC timestamps as matplotlib date numbers, days (n,) float."""
    numbers = mdates.date2num(times.to_numpy())  # type: ignore[no-untyped-call]
    return np.asarray(numbers, dtype=float)


def _floats(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=float)


def _events(events: pa.Table) -> list[_Event]:
    """Return the events the strip labels (weights are drawn on the growth panel instead)."""
    shown = []
    for x, row in zip(_date_numbers(events.column("at")), events.to_pylist(), strict=True):
        kind, value, code = row["kind"], row["value"], row["code"]
        if kind == "lameness":
            score = "?" if value is None else f"{value:g}"
            scale = f" ({row['scale']})" if row["scale"] else ""
            # Routine herd scoring records a 0 for every sound animal: a grey tick, no label.
            shown.append(_Event(x, f"lame {score}{scale}", "sound" if value == 0 else kind))
        elif kind in ("diagnosis", "treatment", "move"):
            prefix = {"diagnosis": "", "treatment": "Rx ", "move": "\u2192 "}[kind]
            shown.append(_Event(x, f"{prefix}{code or kind}", kind))
        elif kind == "note":
            note = shorten(f"note: {row['note'] or ''}", 32, placeholder=" …")
            shown.append(_Event(x, note, "other"))
        elif kind != "weight":
            details = [p for p in (code, None if value is None else f"{value:g}") if p]
            label = " ".join([kind.replace("_", " "), *details])
            shown.append(_Event(x, label, _GROUP_OF_KIND.get(kind, "other")))
    return shown


def _label_layout(
    xs: list[float], texts: list[str], hi: float, span_days: float, n_rows: int
) -> list[_Placement]:
    """Place labels in rows so that labels in one row do not overlap."""
    per_char = LABEL_CHAR_PX * span_days / (FIGSIZE_IN[0] * DPI * (PANELS_RIGHT - PANELS_LEFT))
    ends = [-np.inf] * n_rows
    placements: dict[int, _Placement] = {}
    for i in sorted(range(len(xs)), key=xs.__getitem__):
        x, width = xs[i], (len(texts[i]) + 2) * per_char
        # Near the right edge a label ends at its x instead, to stay inside the axes.
        start, ha = (x - width, "right") if x + width > hi else (x, "left")
        # A char's width of room on the far side too: an event's marker sits centred on its x.
        row = next((r for r in range(n_rows) if ends[r] <= start - per_char), None)
        if row is None:
            row = int(np.argmin(ends))
            placements[i] = _Placement(row, ends[row], "left", crowded=True)
            ends[row] += width
        else:
            placements[i] = _Placement(row, x, ha, crowded=False)
            ends[row] = start + width
    return [placements[i] for i in range(len(xs))]


def _draw_event_strip(ax: Axes, events: list[_Event], lo: float, hi: float, n_hidden: int) -> None:
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_ylabel("events", fontsize=9)
    labelled = [e for e in events if e.group != "sound"]
    xs, texts = [e.x for e in labelled], [e.label for e in labelled]
    placements = _label_layout(xs, texts, hi, hi - lo, LABEL_ROWS)
    step = 0.8 / max(4, 1 + max((p.row for p in placements), default=0))
    for e, place in zip(labelled, placements, strict=True):
        style, y = _STYLES[e.group], 0.86 - step * place.row
        ax.vlines(e.x, 0, y, color=style.colour, lw=0.8, ls=":", alpha=0.7)
        ax.plot(e.x, y, marker=style.marker, color=style.colour, ms=5, ls="none")
        offset = -4 if place.ha == "right" else 4
        ax.annotate(e.label, (place.x, y), xytext=(offset, 0), textcoords="offset points",
                    ha=place.ha, va="center", fontsize=7, color=style.colour)  # fmt: skip
    sound = [e.x for e in events if e.group == "sound"]
    ax.plot(sound, [0.06] * len(sound), marker="v", color=_STYLES["sound"].colour, ms=4, ls="none")
    handles = [
        Line2D([], [], marker=style.marker, color=style.colour, ls="none", label=style.legend)
        for group, style in _STYLES.items()
        if any(e.group == group for e in events)
    ]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.05), fontsize=7,
                  ncols=2, labelspacing=0.3, columnspacing=0.8, handletextpad=0.3)  # fmt: skip
    if n_hidden:
        hidden = f"{n_hidden} event{'s' if n_hidden > 1 else ''} outside these days not drawn"
        ax.text(1.0, 1.03, hidden, transform=ax.transAxes, ha="right", va="bottom",
                fontsize=7, color="0.4")  # fmt: skip


def _rolling_median(x: np.ndarray, values: np.ndarray, window_days: int) -> np.ndarray:
    """Return the median of `values` within a centred window of `window_days` around each x."""
    lo = np.searchsorted(x, x - window_days / 2, side="left")
    hi = np.searchsorted(x, x + window_days / 2, side="right")
    return np.array([np.median(values[a:b]) for a, b in zip(lo, hi, strict=True)])


def _scale_weights(events: pa.Table, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Return the date numbers and kg of the scale weights between `lo` and `hi`."""
    weights = events.filter(pc.equal(events.column("kind"), "weight"))
    weights = weights.filter(pc.is_valid(weights.column("value")))
    x = _date_numbers(weights.column("at"))
    inside = (x >= lo) & (x <= hi)
    return x[inside], _floats(weights, "value")[inside]


def _draw_growth(ax: Axes, d: _Days, scale: tuple[np.ndarray, np.ndarray]) -> None:
    known = ~np.isnan(d.weight_kg)
    whole, partial = known & ~d.partial, known & d.partial
    x, kg = d.x[whole] + 0.5, d.weight_kg[whole]
    if whole.any():
        ax.scatter(x, kg, s=9, color=GROWTH, alpha=0.5, lw=0, label="estimated from image, daily")
        # Only whole days: a short day's few standing frames are noise, not a change.
        median = _rolling_median(x, kg, ROLLING_DAYS)
        ax.plot(x, median, color=GROWTH, lw=2, label=f"estimated, {ROLLING_DAYS}-day median")
    if partial.any():
        ax.scatter(d.x[partial] + 0.5, d.weight_kg[partial], s=14, facecolor="none",
                   edgecolor=GROWTH, lw=0.8, label=_partial_label(d))  # fmt: skip
    if len(scale[0]):
        ax.scatter(*scale, s=30, marker="D", facecolor="white", edgecolor="black", zorder=3,
                   label="scale weight")  # fmt: skip
    if known.any() or len(scale[0]):
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="weight")
        # Keep 10 kg in view at least, so a kilo of estimate noise does not read as a trend.
        bottom, top = ax.get_ylim()
        middle, half = (bottom + top) / 2, max((top - bottom) / 2, 5.0)
        ax.set_ylim(middle - half, middle + half)
    else:
        ax.text(0.5, 0.5, "no weights recorded", transform=ax.transAxes,
                ha="center", va="center", color="0.4")  # fmt: skip
        ax.set_yticks([])
    ax.set_ylabel("weight, kg")
    ax.grid(axis="y", color="0.9")


def _partial_label(d: _Days) -> str:
    return f"partial day (under {d.coverage_floor_h:g} h observed)"


def _budget_bars(d: _Days) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, str]:
    """Return bar centres, hours observed per class (bars, k) of a day (a week's bar: its
    mean day), whether each bar is partial, bar width in days, and a caption."""
    if len(d.x) <= WEEKLY_AFTER_DAYS:
        return d.x + 0.5, d.minutes / 60.0, d.partial, 0.85, "daily"
    # 1970-01-01 was a Thursday: shifting by 3 days makes the weeks start on Monday.
    weekday, week = (d.epoch_day + 3) % 7, (d.epoch_day + 3) // 7
    _, first, inverse = np.unique(week, return_index=True, return_inverse=True)
    minutes = np.zeros((len(first), d.minutes.shape[1]))
    np.add.at(minutes, inverse, d.minutes)
    days = np.bincount(inverse, minlength=len(first)).astype(float)[:, None]
    hours = minutes / 60.0 / days
    partial = hours.sum(axis=1) < d.coverage_floor_h
    return d.x[first] - weekday[first] + 3.5, hours, partial, 6.0, "weekly"


def _draw_budget(ax: Axes, d: _Days) -> None:
    x, hours, partial, width, caption = _budget_bars(d)
    palette = colormaps["tab10" if len(d.classes) <= 10 else "tab20"]
    top = np.cumsum(hours, axis=1)
    left, right = x - width / 2, x + width / 2
    for i, name in enumerate(d.classes):
        # One collection of rectangles per class: ax.bar makes a patch per bar, ~10x slower.
        b, t = top[:, i] - hours[:, i], top[:, i]
        corners = ((left, b), (left, t), (right, t), (right, b))
        rectangles = np.stack([np.column_stack(c) for c in corners], axis=1)  # (bars, 4, 2)
        colour = to_rgba("0.75" if name == OTHER_BEHAVIOUR else palette(i))
        # A partial day's bar is faded as well as short.
        colours = np.tile(colour, (len(x), 1))
        colours[partial, 3] = 0.4
        ax.add_collection(PolyCollection(list(rectangles), facecolors=colours, lw=0, label=name))
    ax.set_ylim(0, 24)
    ax.set_yticks([0, 6, 12, 18, 24])
    ax.set_ylabel(f"hours observed\n({caption}, per day)", fontsize=9)
    handles, _ = ax.get_legend_handles_labels()
    if partial.any():
        handles.insert(
            0, Patch(facecolor="0.5", alpha=0.4, label=f"faded: under {d.coverage_floor_h:g} h")
        )
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              title="behaviour", reverse=True)  # fmt: skip


def _anomaly_runs(d: _Days) -> list[tuple[float, float, str]]:
    """Return (start, end, label) per run of consecutive flagged days; the label gives the
    flags and the largest deviation behind them, in sigma."""
    runs: list[tuple[float, float, list[str], float]] = []
    for x, flags, z in zip(d.x.tolist(), d.anomalies, d.anomaly_z.tolist(), strict=True):
        if flags and runs and runs[-1][1] == x:
            start, _, seen, z_max = runs[-1]
            runs[-1] = (start, x + 1, seen + [f for f in flags if f not in seen], max(z_max, z))
        elif flags:
            runs.append((x, x + 1, list(flags), z))
    return [
        (start, end, ", ".join(flags).replace("_", " ") + ("" if np.isnan(z) else f" {z:.1f}σ"))
        for start, end, flags, z in runs
    ]


def _draw_activity(ax: Axes, d: _Days, lo: float, hi: float) -> None:
    marker = "o" if len(d.x) <= MARKERS_UP_TO_DAYS else None
    whole = ~d.partial
    for values, colour, label in ((d.activity, ACTIVITY, "activity index"),
                                  (d.lying, LYING, "lying share")):  # fmt: skip
        ax.plot(d.x[whole] + 0.5, values[whole], color=colour, lw=1.2, marker=marker, ms=3,
                label=label)  # fmt: skip
        ax.plot(d.x[d.partial] + 0.5, values[d.partial], ls="none", marker="o", ms=4,
                mfc="none", mec=colour, mew=0.8)  # fmt: skip
    runs = _anomaly_runs(d)
    layout = _label_layout([r[0] for r in runs], [r[2] for r in runs], hi, hi - lo, 2)
    for (start, end, label), place in zip(runs, layout, strict=True):
        ax.axvspan(start, end, color=ANOMALY, alpha=0.18, lw=0)
        # A crowded label is left out: the shaded span still marks the days.
        if not place.crowded:
            ax.text(place.x, 1.3 - 0.17 * place.row, label, fontsize=7, va="top", color=ANOMALY,
                    ha=place.ha)  # fmt: skip
    handles, _ = ax.get_legend_handles_labels()
    if d.partial.any():
        handles.append(Line2D([], [], ls="none", marker="o", mfc="none", mec="0.3",
                              label=_partial_label(d)))  # fmt: skip
    handles.append(Patch(color=ANOMALY, alpha=0.18, label="anomaly flagged"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_ylim(0, 1.35)
    ax.set_yticks([0, 0.5, 1])
    ax.set_ylabel("share of\nobserved time", fontsize=9)
    ax.grid(axis="y", color="0.9")
