"""Health and production events as input: the kinds, the rules of each kind, parsing.

What `value`, `unit` and `result` mean depends on the kind:

- `lameness`: value = whole score within `scale` ("0-3": pigs, Zinpro; dairy, AHDB;
  "1-5": Sprecher), unit "score".
- `weight`: value = kg, 0 < kg < 2000, unit "kg".
- `treatment`: code = product; value = dose > 0 with its unit (ml, mg/kg ...);
  withdrawal_days >= 0.
- `farrowing`, `calving`: value = total born, unit "head"; result = born alive as a whole
  number in decimal text ("11"), at most the total (stillborn = total - born alive).
- `weaning`: value = young weaned, unit "head".
- `pregnancy_check`: result = positive or negative.
- `diagnosis`: code = condition (PRRS, MHYO ...); `insemination`: code = AI, natural ...;
  `move`: code = destination pen id; `death`: code = cause; `note`: note required.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from herdrecord.contract.models import IDENTIFIER_PATTERN, Identifier
from herdrecord.errors import InvalidInput

EventKind = Literal[
    "lameness",
    "diagnosis",
    "treatment",
    "weight",
    "oestrus",
    "insemination",
    "pregnancy_check",
    "farrowing",
    "calving",
    "weaning",
    "abortion",
    "move",
    "birth",
    "death",
    "sale",
    "note",
]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)
LamenessScale = Literal["0-3", "1-5"]

MAX_KG = 2000.0  # heavier than any bull: a typo or a unit mix-up
MAX_LITTER = 50  # above any recorded litter
MAX_WITHDRAWAL_DAYS = 1000.0
MAX_PROBLEMS_SHOWN = 50
MAX_NOTE_CHARS = 2000
MAX_AUTHOR_CHARS = 128
MAX_EVENT_KEY_CHARS = 128
DEPARTURES = ("death", "sale")  # kinds that take an animal off the farm
PARTURITIONS = ("farrowing", "calving")  # kinds that count a litter born, and born alive
BREEDING_KINDS = (
    "oestrus",
    "insemination",
    "pregnancy_check",
    *PARTURITIONS,
    "weaning",
    "abortion",
)

_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Author = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_AUTHOR_CHARS, pattern=_PRINTABLE
    ),
]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=_PRINTABLE)
]
Note = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NOTE_CHARS)
]
EventKey = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_EVENT_KEY_CHARS, pattern=_PRINTABLE
    ),
]

# Which optional columns each kind uses; a column a kind does not use must stay empty
# (a filled one is usually a shifted CSV cell or the wrong kind). `note` suits every kind.
_USES: dict[str, dict[str, str]] = {
    "lameness": {"scale": "required", "value": "required", "unit": "optional"},
    "diagnosis": {"code": "required", "result": "optional"},
    "treatment": {
        "code": "required",
        "value": "optional",
        "unit": "optional",
        "withdrawal_days": "optional",
    },
    "weight": {"value": "required", "unit": "optional"},
    "oestrus": {},
    "insemination": {"code": "optional"},
    "pregnancy_check": {"result": "required", "code": "optional"},
    "farrowing": {"value": "required", "unit": "optional", "result": "optional"},
    "calving": {"value": "required", "unit": "optional", "result": "optional"},
    "weaning": {"value": "required", "unit": "optional"},
    "abortion": {},
    "move": {"code": "required"},
    "birth": {},
    "death": {"code": "optional"},
    "sale": {"code": "optional"},
    "note": {"note": "required"},
}
_FIXED_UNIT = {
    "lameness": "score",
    "weight": "kg",
    "farrowing": "head",
    "calving": "head",
    "weaning": "head",
}
_WHAT = {
    ("lameness", "scale"): "0-3 (pigs: Zinpro; dairy: AHDB) or 1-5 (Sprecher)",
    ("lameness", "value"): "the score",
    ("diagnosis", "code"): "the condition, e.g. PRRS or MHYO",
    ("treatment", "code"): "the product given",
    ("weight", "value"): "the weight in kg",
    ("pregnancy_check", "result"): "positive or negative",
    ("farrowing", "value"): "the total born",
    ("calving", "value"): "the total born",
    ("weaning", "value"): "the number weaned",
    ("move", "code"): "the destination pen id",
    ("note", "note"): "the text of the note",
}
_RULED_FIELDS = ("scale", "value", "unit", "code", "result", "withdrawal_days", "note")


class EventInput(BaseModel):
    """One health or production event as a person or a device reports it."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, validate_default=True
    )

    # Validated in this order; a field's kind rules may look at the fields before it.
    animal_id: Identifier
    kind: EventKind
    at: AwareDatetime
    author: Author
    scale: LamenessScale | None = None
    value: float | None = None
    unit: ShortText | None = None
    code: ShortText | None = None
    result: ShortText | None = None
    withdrawal_days: float | None = None
    note: Note | None = None
    # The sender's own id of the event: a repeat of the key is a duplicate, not stored.
    event_key: EventKey | None = None

    @field_validator("at")
    @classmethod
    def _fits_utc(cls, given: datetime) -> datetime:
        try:
            return given.astimezone(UTC)
        except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
            raise _rule(f"{given.isoformat()} is outside the years 1 to 9999 in UTC") from None

    @field_validator(*_RULED_FIELDS)
    @classmethod
    def _fits_kind(cls, given: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if kind is None:  # the kind itself is invalid and says so
            return given
        field = str(info.field_name)
        use = _USES[kind].get(field, "optional" if field == "note" else None)
        if given is None and field == "unit" and use is not None:
            given = _FIXED_UNIT.get(kind)
        if given is None:
            if use == "required":
                what = _WHAT.get((kind, field), "")
                raise _rule(f"required for {kind} events" + (f": {what}" if what else ""))
            if field == "unit" and kind == "treatment" and info.data.get("value") is not None:
                raise _rule("give the dose's unit, e.g. ml or mg/kg")
            return None
        if use is None:
            raise _rule(f"not used by {kind} events")
        return _CHECKS.get(field, _unchecked)(kind, given, info.data)


def _rule(problem: str) -> PydanticCustomError:
    return PydanticCustomError("event_rule", "{problem}", {"problem": problem})


def _unchecked(kind: str, given: Any, data: dict[str, Any]) -> Any:
    return given


def _check_value(kind: str, value: float, data: dict[str, Any]) -> float:
    if kind == "lameness":
        scale = data.get("scale")
        low, high = (0, 3) if scale == "0-3" else (1, 5)
        if not value.is_integer():
            raise _rule(f"lameness score {value:g} is not a whole number")
        if scale is not None and not low <= value <= high:
            raise _rule(f"lameness score {value:g} is outside scale {scale}")
    elif kind == "weight" and not 0 < value < MAX_KG:
        raise _rule(f"weight {value:g} kg is outside 0 < kg < {MAX_KG:g}")
    elif kind == "treatment" and value <= 0:
        raise _rule(f"dose {value:g} must be above 0")
    elif kind in (*PARTURITIONS, "weaning") and not (
        value.is_integer() and 0 <= value <= MAX_LITTER
    ):
        raise _rule(f"{value:g} head: give a whole number from 0 to {MAX_LITTER}")
    return value


def _check_unit(kind: str, unit: str, data: dict[str, Any]) -> str:
    fixed = _FIXED_UNIT.get(kind)
    if fixed is not None and unit != fixed:
        raise _rule(f"{kind} values are kept in {fixed}, got {unit!r}")
    if kind == "treatment" and "value" in data and data["value"] is None:
        raise _rule(f"{unit!r} given without a dose value")
    return unit


def _check_code(kind: str, code: str, data: dict[str, Any]) -> str:
    if kind == "move" and not re.fullmatch(IDENTIFIER_PATTERN, code):
        raise _rule(f"pen id {code!r}: letters, digits and ._:/@+- only, no spaces")
    return code


def _check_result(kind: str, result: str, data: dict[str, Any]) -> str:
    if kind == "pregnancy_check":
        if result.lower() not in ("positive", "negative"):
            raise _rule(f"{result!r}: give positive or negative")
        return result.lower()
    if kind in PARTURITIONS:
        if not re.fullmatch(r"[0-9]{1,3}", result):
            raise _rule(f"born alive {result!r}: give a whole number")
        total = data.get("value")
        if total is not None and int(result) > total:
            raise _rule(f"born alive {int(result)} is more than the {total:g} born in total")
        return str(int(result))
    return result


def _check_withdrawal(kind: str, days: float, data: dict[str, Any]) -> float:
    if not 0 <= days <= MAX_WITHDRAWAL_DAYS:
        raise _rule(f"{days:g} days is outside 0 to {MAX_WITHDRAWAL_DAYS:g}")
    return days


_CHECKS: dict[str, Any] = {
    "value": _check_value,
    "unit": _check_unit,
    "code": _check_code,
    "result": _check_result,
    "withdrawal_days": _check_withdrawal,
}


class EventsRejected(InvalidInput):
    """Events failed validation; nothing of them was stored."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(f"event rejected, nothing stored: {self.problems[0]}")
            return
        shown = self.problems[:MAX_PROBLEMS_SHOWN]
        rest = len(self.problems) - len(shown)
        lines = [f"{len(self.problems)} problems, nothing stored:", *(f"  {p}" for p in shown)]
        super().__init__("\n".join(lines + ([f"  ... and {rest} more"] if rest else [])))


def parse_event(data: Mapping[str, object]) -> EventInput:
    """Return the event given as field -> value (text is parsed); raise EventsRejected."""
    try:
        return EventInput.model_validate(dict(data))
    except ValidationError as exc:
        raise EventsRejected(_problems_of(exc)) from None


def _problems_of(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "event"
        message, kind, given = item["msg"], item["type"], item.get("input")
        if kind == "timezone_aware":
            message = f"{given} has no time zone; write e.g. 2026-11-21T06:00Z or +01:00"
        elif kind.startswith("datetime"):
            message = f"{given!r} is not a time; write e.g. 2026-11-21T06:00Z"
        elif kind == "string_pattern_mismatch" and where == "animal_id":
            message = (
                f"{given!r}: letters, digits and ._:/@+- only, starting with one of the first two"
            )
        elif kind == "string_pattern_mismatch":
            message = f"{given!r}: control characters (newline, tab ...) are not allowed here"
        elif kind == "extra_forbidden":
            message = "not an event field"
        problems.append(f"{where}: {message}")
    return problems


def check_retraction(author: str, reason: str) -> tuple[str, str]:
    """Return the author and reason of a retraction, stripped; raise InvalidInput."""
    author, reason = author.strip(), reason.strip()
    if not author or not reason:
        raise InvalidInput("a retraction needs an author and a reason")
    if (
        len(author) > MAX_AUTHOR_CHARS
        or len(reason) > MAX_NOTE_CHARS
        or not re.fullmatch(_PRINTABLE, author)
    ):
        raise InvalidInput(
            f"a retraction's author is one line of up to {MAX_AUTHOR_CHARS} characters and its "
            f"reason up to {MAX_NOTE_CHARS}"
        )
    return author, reason


def describe_event(row: Mapping[str, Any]) -> str:
    """Return an event's fields in a short line: `Draxxin 2.5 ml, withdrawal 28 d; left hind`."""
    parts = [row["code"]] if row["code"] else []
    if row["value"] is not None:
        value = f"{row['value']:g}"
        if row["scale"]:
            value += f" on {row['scale']}"
        elif row["unit"]:
            value += f" {row['unit']}"
        parts.append(value)
    if row["result"]:
        parts.append(
            f"born alive {row['result']}" if row["kind"] in PARTURITIONS else row["result"]
        )
    text = " ".join(parts)
    if row["withdrawal_days"] is not None:
        text += f", withdrawal {row['withdrawal_days']:g} d"
    if row["note"]:
        text += f"; {row['note']}" if text else row["note"]
    return text
