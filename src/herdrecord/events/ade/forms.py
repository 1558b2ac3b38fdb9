"""The ADE event resources herdrecord reads and writes, each tied to a kind of event.

A form turns the fields of one ADE resource into the columns of an event (`read`) and the
columns back into those fields (`write`). What `read` takes is exactly what `write` gives
back: whatever else an ADE event says is kept beside the event as its payload (see
`herdrecord.events.ade.mapping`), so that nothing of an imported event is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

PEN_SCHEME = "org.herdrecord.pen"  # a location that is one of the record's pens
SCALE_SCHEME = "org.herdrecord.lameness-scale"  # traitLabel of a locomotion score: its scale
GAIT_SCHEME = "org.herdrecord.gait"  # traitLabel of the cameras' gait measure (derived)
PRODUCT_SCHEME = "org.herdrecord.product"  # a medicine known by the name the farm gave it

# UN/CEFACT dose units and the units herdrecord writes for them.
DOSE_UNITS = {"MLT": "ml", "LTR": "l", "MGM": "mg", "GRM": "g"}
# UN/CEFACT mass units, in kg.
MASS_KG = {"KGM": 1.0, "GRM": 0.001, "MGM": 1e-6, "TNE": 1000.0, "LBR": 0.45359237}
INSEMINATION_CODES = {
    "Insemination": "AI",
    "NaturalService": "natural",
    "RunWithBull": "run_with_bull",
    "Implantation": "embryo_transfer",
}
PREGNANCY_METHODS = ("Echography", "Palpation", "Blood", "Milk", "Visual", "Other")
DEATH_REASONS = (
    "Missing",
    "Parturition",
    "Disease",
    "Accident",
    "Consumption",
    "Culled",
    "Other",
    "Unknown",
    "Age",
    "Mastitis",
    "Production",
    "LegOrClaw",
    "MilkingAbility",
    "Nutrition",
    "Fertility",
)


class Unmappable(Exception):
    """An ADE event that herdrecord cannot keep as one of its events; `where` is a JSON path
    relative to the event (`.diagnoses[0]`), `problem` says what to give."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Context:
    """What a form needs to know about the event's animal."""

    species: str | None  # a parturition is a farrowing for pigs, else a calving
    pen_id: str | None  # where a birth took place, as far as the record knows


Reader = Callable[[Mapping[str, Any], Context], dict[str, Any]]
Writer = Callable[[Mapping[str, Any], Context], dict[str, Any]]


@dataclass(frozen=True)
class Form:
    """One ADE event resource and how it maps onto the record's events."""

    resource_type: str  # e.g. icarDiagnosisEvent (its schema: resources/<it>Resource.json)
    kinds: tuple[str, ...]  # the kinds it can give; the first is what it gives by default
    read: Reader  # ADE fields -> event columns, `kind` among them
    write: Writer  # event columns -> the ADE fields `read` takes


def _diagnosis_read(item: Mapping[str, Any], context: Context) -> dict[str, Any]:
    diagnoses = item.get("diagnoses") or []
    if not diagnoses:
        raise Unmappable(".diagnoses", "give at least one diagnosis (its name or diagnosisCode)")
    first = diagnoses[0]
    code = first.get("name") or (first.get("diagnosisCode") or {}).get("id")
    if not code:
        raise Unmappable(".diagnoses[0]", "give the condition's name or diagnosisCode")
    return {"kind": "diagnosis", "code": code}


def _diagnosis_write(event: Mapping[str, Any], context: Context) -> dict[str, Any]:
    return {"diagnoses": [{"name": event["code"]}]}


def _health_read(item: Mapping[str, Any], context: Context) -> dict[str, Any]:
    status = item.get("observedStatus")
    if not status:
        raise Unmappable(".observedStatus", "give the health status observed")
    return {"kind": "diagnosis", "code": status}


def _health_write(event: Mapping[str, Any], context: Context) -> dict[str, Any]:
    return {"observedStatus": event["code"]}


def _treatment_read(item: Mapping[str, Any], context: Context) -> dict[str, Any]:
    medicine = item.get("medicine") or {}
    code = (
        medicine.get("name")
        or (medicine.get("identifier") or {}).get("id")
        or (medicine.get("registeredIdentifier") or {}).get("id")
        or item.get("procedure")
    )
    if not code:
        raise Unmappable(".medicine", "give the medicine's name (or a procedure)")
    dose = item.get("dose") or {}
    value = dose.get("doseQuantity")
    units: str | None = dose.get("doseUnits")
    columns: dict[str, Any] = {"kind": "treatment", "code": code, "value": value}
    if value is not None and units is not None:
        columns["unit"] = DOSE_UNITS.get(units, units)
    ends = [w["endDate"] for w in item.get("withdrawals") or [] if w.get("endDate")]
    if ends:
        at = parse_time(item["eventDateTime"])
        days = max((parse_time(end, ".withdrawals") - at) / timedelta(days=1) for end in ends)
        if days < 0:
            raise Unmappable(".withdrawals", "a withdrawal ends before the treatment")
        columns["withdrawal_days"] = round(days, 3)  # whole minutes, as written
    return columns


def _treatment_write(event: Mapping[str, Any], context: Context) -> dict[str, Any]:
    medicine = {
        "identifier": {"scheme": PRODUCT_SCHEME, "id": event["code"]},
        "family": "Veterinary Supplies",
        "name": event["code"],
    }
    fields: dict[str, Any] = {"medicine": medicine}
    if event["value"] is not None:
        units = {unit: code for code, unit in DOSE_UNITS.items()}.get(event["unit"])
        fields["dose"] = {"doseQuantity": event["value"]}
        if units is not None:
            fields["dose"]["doseUnits"] = units
    if event["withdrawal_days"] is not None:
        end = event["at"] + timedelta(days=float(event["withdrawal_days"]))
        fields["withdrawals"] = [{"endDate": format_time(end)}]
    return fields


def _weight_read(item: Mapping[str, Any], context: Context) -> dict[str, Any]:
    weight = item.get("weight") or {}
    if weight.get("measurement") is None:
        raise Unmappable(".weight.measurement", "give the weight")
    units = weight.get("units", "KGM")
    if units not in MASS_KG:
        raise Unmappable(".weight.units", f"{units!r}: give KGM, GRM, MGM, TNE or LBR")
    return {"kind": "weight", "value": weight["measurement"] * MASS_KG[units]}


def _weight_write(event: Mapping[str, Any], context: Context) -> dict[str, Any]:
    return {"weight": {"measurement": event["value"], "units": "KGM"}}


def _insemination_read(item: Mapping[str, Any], context: Context) -> dict[str, Any]:
    return {"kind": "insemination", "code": INSEMINATION_CODES.get(str(item["inseminationType"]))}


def _insemination_write(event: Mapping[str, Any], context: Context) -> dict[str, Any]:
    types = {code: kind for kind, code in INSEMINATION_CODES.items()}
    return {"inseminationType": types.get(event["code"], "Insemination")}


def _pregnancy_read(item: Mapping[str, Any], context: Context) -> dict[str, Any]:
    result = {"Pregnant": "positive", "Multiple": "positive", "Empty": "negative"}.get(
        item.get("result", "")
    )
    if result is None:
        raise Unmappable(".result", "give Pregnant, Multiple or Empty (positive or negative)")
    return {"kind": "pregnancy_check", "result": result, "code": item.get("method")}


def _pregnancy_write(event: Mapping[str, Any], context: Context) -> dict[str, Any]:
    fields = {"result": "Pregnant" if event["result"] == "positive" else "Empty"}
    if event["code"] in PREGNANCY_METHODS:
        fields["method"] = event["code"]
    return fields


def _parturition_read(item: Mapping[str, Any], context: Context) -> dict[str, Any]:
    total = item.get("totalProgeny")
    if total is None:
        raise Unmappable(".totalProgeny", "give the number born in total")
    live = item.get("liveProgeny")
    return {
        "kind": "farrowing" if context.species == "pig" else "calving",
        "value": total,
        "result": None if live is None else str(live),
    }


def _parturition_write(event: Mapping[str, Any], context: Context) -> dict[str, Any]:
    fields = {"totalProgeny": round(event["value"])}
    if event["result"] is not None:
        fields["liveProgeny"] = int(event["result"])
    return fields


def _arrival_read(item: Mapping[str, Any], context: Context) -> dict[str, Any]:
    pen = (item.get("location") or {}).get("id")
    if not pen:
        raise Unmappable(".location", "give the pen it arrived in (scheme and id)")
    return {"kind": "move", "code": pen}


def _arrival_write(event: Mapping[str, Any], context: Context) -> dict[str, Any]:
    return {"arrivalReason": "InternalTransfer", "location": pen_location(event["code"])}


def _departure_write(event: Mapping[str, Any], context: Context) -> dict[str, Any]:
    return {"departureKind": "Sale"}


def _death_read(item: Mapping[str, Any], context: Context) -> dict[str, Any]:
    reason, explanation = item.get("deathReason"), item.get("explanation")
    code = explanation if explanation and reason in (None, "Other") else reason
    return {"kind": "death", "code": code}


def _death_write(event: Mapping[str, Any], context: Context) -> dict[str, Any]:
    code = event["code"]
    if code is None:
        return {}
    if code in DEATH_REASONS:
        return {"deathReason": code}
    return {"deathReason": "Other", "explanation": code}


def _birth_write(event: Mapping[str, Any], context: Context) -> dict[str, Any]:
    # ADE requires a birth's location; the record knows the animal's pen.
    return {"location": pen_location(context.pen_id or "unknown")}


def _lameness_read(item: Mapping[str, Any], context: Context) -> dict[str, Any]:
    if item.get("traitScored") != "Locomotion":
        raise Unmappable(".traitScored", "herdrecord keeps Locomotion scores (lameness) only")
    label = item.get("traitLabel") or {}
    if label.get("scheme") != SCALE_SCHEME:
        raise Unmappable(
            ".traitLabel",
            f"give the score's scale as {{scheme: {SCALE_SCHEME}, id: 0-3 or 1-5}}",
        )
    return {"kind": "lameness", "scale": label.get("id"), "value": item["score"]}


def _lameness_write(event: Mapping[str, Any], context: Context) -> dict[str, Any]:
    return {
        "traitScored": "Locomotion",
        "score": event["value"],
        "method": "Manual",  # a person's score; the cameras' gait measure is Automated
        "traitLabel": {"scheme": SCALE_SCHEME, "id": event["scale"]},
    }


def _just(kind: str) -> Reader:
    def read(item: Mapping[str, Any], context: Context) -> dict[str, Any]:
        return {"kind": kind}

    return read


def _nothing(event: Mapping[str, Any], context: Context) -> dict[str, Any]:
    return {}


FORMS: dict[str, Form] = {
    form.resource_type: form
    for form in (
        Form("icarDiagnosisEvent", ("diagnosis",), _diagnosis_read, _diagnosis_write),
        Form("icarHealthStatusObservedEvent", (), _health_read, _health_write),
        Form("icarTreatmentEvent", ("treatment",), _treatment_read, _treatment_write),
        Form("icarWeightEvent", ("weight",), _weight_read, _weight_write),
        Form("icarReproHeatEvent", ("oestrus",), _just("oestrus"), _nothing),
        Form(
            "icarReproInseminationEvent",
            ("insemination",),
            _insemination_read,
            _insemination_write,
        ),
        Form(
            "icarReproPregnancyCheckEvent", ("pregnancy_check",), _pregnancy_read, _pregnancy_write
        ),
        Form(
            "icarReproParturitionEvent",
            ("farrowing", "calving"),
            _parturition_read,
            _parturition_write,
        ),
        Form("icarReproAbortionEvent", ("abortion",), _just("abortion"), _nothing),
        Form("icarMovementArrivalEvent", ("move",), _arrival_read, _arrival_write),
        Form("icarMovementDepartureEvent", ("sale",), _just("sale"), _departure_write),
        Form("icarMovementDeathEvent", ("death",), _death_read, _death_write),
        Form("icarMovementBirthEvent", ("birth",), _just("birth"), _birth_write),
        Form("icarConformationScoreEvent", ("lameness",), _lameness_read, _lameness_write),
    )
}
FORM_OF_KIND: dict[str, Form] = {kind: form for form in FORMS.values() for kind in form.kinds}
# Resources a record derives from its days (see herdrecord.query.icar_export): written on
# export, never read back as events.
DERIVED_TYPES = ("icarAttentionEvent",)


def is_derived(item: Mapping[str, Any]) -> bool:
    """Return whether an ADE event is one a record derives from its days (an attention
    event, or the cameras' gait measure), which an import leaves out."""
    if item.get("resourceType") in DERIVED_TYPES:
        return True
    label = item.get("traitLabel")
    return (
        item.get("resourceType") == "icarConformationScoreEvent"
        and isinstance(label, Mapping)
        and label.get("scheme") == GAIT_SCHEME
    )


def pen_location(pen_id: str) -> dict[str, str]:
    """Return the ADE location of one of the record's pens."""
    return {"scheme": PEN_SCHEME, "id": pen_id}


def parse_time(text: str, where: str = ".eventDateTime") -> datetime:
    """Return an RFC 3339 time (the schemas checked its form) as an aware datetime; raise
    Unmappable for one Python cannot hold (a leap second)."""
    try:
        return datetime.fromisoformat(text.upper())
    except ValueError as exc:
        raise Unmappable(where, f"{text!r} is not a time herdrecord can keep ({exc})") from None


def format_time(moment: datetime) -> str:
    """Return an aware datetime as RFC 3339 in UTC with a Z, as ADE asks."""
    moment = moment.astimezone(UTC)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")
