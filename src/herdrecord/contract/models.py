"""The edge batch contract, version 1: pydantic models of the JSON form and its JSON Schema.

The contract has two encodings. The JSON form (plain or gzip) is parsed by the pydantic
models here, which check types, shapes and value ranges. The Parquet form for bulk loads is
read column-wise by `herdrecord.contract.parquet`. Both are turned into the same columnar
`BatchFrames` and then checked by the one set of record-dependent rules in
`herdrecord.contract.rules` (embedder, dimension, vocabulary, time order, duplicates, limits),
so a batch means the same thing and is judged the same way whichever encoding carried it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from pydantic import (
    AwareDatetime,
    Base64Bytes,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
)
from pydantic.types import FailFast

BATCH_SCHEMA_ID = "herdrecord.edge-batch/1"
_Model = TypeVar("_Model", bound=BaseModel)

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$"
Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN),
]
"""Ids of batches, farms, devices, cameras, pens, tracks and tags: printable, no spaces."""

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
BBox = Annotated[
    tuple[float, float, Annotated[float, Field(gt=0.0)], Annotated[float, Field(gt=0.0)]],
    Field(description="[x, y, width, height] in pixels; width and height > 0"),
]


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class EmbedderSpec(_Contract):
    """The model that produced the embeddings; must match the record's."""

    name: Identifier = Field(description="embedder name, e.g. dinov3-vits16")
    dim: int = Field(ge=1, le=8192, description="embedding dimension, e.g. 384")
    weights_sha256: str | None = Field(
        default=None,
        pattern="^[0-9a-f]{64}$",
        description="SHA-256 of the model's weights (`herdrecord embed` prints it); when "
        "given it must be the record's",
    )


class Sample(_Contract):
    """One embedding sample of a tracklet."""

    t: AwareDatetime = Field(description="RFC 3339 time with offset, within [start, end]")
    embedding: list[float] = Field(description="exactly embedder.dim finite floats")
    quality: Probability = Field(description="edge quality score of the crop, 0..1")


class Observation(_Contract):
    """One timestamped sample of a tracklet's state."""

    t: AwareDatetime = Field(description="RFC 3339 time with offset, within [start, end]")
    bbox: BBox
    area_px: NonNegative = Field(description="segmented mask area, px^2")
    behaviour: Identifier = Field(description="one of the record's behaviour vocabulary")
    behaviour_conf: Probability = Field(description="behaviour classifier confidence, 0..1")
    speed_px_s: NonNegative = Field(description="speed of the bbox centre, px/s")
    gait_score: float | None = Field(default=None, description="edge gait indicator, if any")


class Keyframe(_Contract):
    """A small JPEG crop of the animal: the visual record."""

    t: AwareDatetime = Field(description="RFC 3339 time with offset, within [start, end]")
    bbox: BBox
    jpeg_b64: Base64Bytes = Field(description="the JPEG crop, base64")


class Tracklet(_Contract):
    """One continuous track of one unknown animal from one camera in one pen."""

    track_id: Identifier = Field(description="unique per device")
    camera_id: Identifier
    pen_id: Identifier
    start: AwareDatetime = Field(description="first frame, RFC 3339 with offset")
    end: AwareDatetime = Field(description="last frame, RFC 3339 with offset; end >= start")
    tag_id: Identifier | None = Field(default=None, description="RFID/ear-tag read, if any")
    samples: list[Sample] = Field(min_length=1, description="at least one embedding sample")
    observations: list[Observation] = Field(default_factory=list)
    keyframes: list[Keyframe] = Field(default_factory=list)


class EdgeBatch(_Contract):
    """One upload from one edge device; batch_id is its idempotency key."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        frozen=True,
        populate_by_name=True,
        title="herdrecord edge batch, version 1",
    )

    schema_id: Literal["herdrecord.edge-batch/1"] = Field(alias="schema")
    batch_id: Identifier = Field(description="idempotency key, e.g. dev-07/2026-11-21T06")
    farm_id: Identifier
    device_id: Identifier
    embedder: EmbedderSpec
    tracklets: list[Tracklet]


def numeric_bounds(
    model: type[BaseModel],
) -> dict[str, tuple[float | None, float | None, float | None]]:
    """Return `field -> (ge, gt, le)` for the model's numeric fields with declared bounds."""
    bounds: dict[str, tuple[float | None, float | None, float | None]] = {}
    for name, info in model.model_fields.items():
        ge = gt = le = None
        for item in info.metadata:
            ge = getattr(item, "ge", ge)
            gt = getattr(item, "gt", gt)
            le = getattr(item, "le", le)
        if ge is not None or gt is not None or le is not None:
            bounds[name] = (ge, gt, le)
    return bounds


def format_loc(loc: tuple[int | str, ...]) -> str:
    """Return a pydantic error location as a path: `tracklets[3].samples[0].embedding`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "batch"


def edge_batch_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of the edge batch contract's JSON form."""
    schema = EdgeBatch.model_json_schema(by_alias=True)
    schema["$id"] = BATCH_SCHEMA_ID
    schema["description"] = (
        "One upload from one edge device. Beyond this schema the record checks: the embedder "
        "and dim match the record's; every embedding has exactly dim finite floats; sample, "
        "observation and keyframe times lie within [start, end]; end >= start; behaviours are "
        "in the record's vocabulary; track_ids are unique within the batch and unused by "
        "earlier batches of the device; keyframes are JPEG; sizes are within the limits."
    )
    normalised: dict[str, Any] = json.loads(json.dumps(schema))
    return normalised


def first_errors_variant(model: type[_Model]) -> type[_Model]:
    """Return a subclass of the model whose every list stops validating at its first bad item.

    The fields, bounds and config are the model's; only the error listing changes, so a batch
    of a million bad items costs one error per list instead of a million (and the memory of
    each). Nested models in lists and fields get the same treatment."""
    overrides: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        nested = _nested_model(annotation)
        if get_origin(annotation) is list:
            (item,) = get_args(annotation)
            item_model = _nested_model(item)
            item = first_errors_variant(item_model) if item_model else item
            overrides[name] = (Annotated[list[item], FailFast()], info)  # type: ignore[valid-type]
        elif nested is not None:
            overrides[name] = (first_errors_variant(nested), info)
    return create_model(
        f"{model.__name__}FirstErrors", __base__=model, __module__=model.__module__, **overrides
    )


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


EdgeBatchFirstErrors = first_errors_variant(EdgeBatch)
"""The contract with each list's first error only: what a large or hostile batch is checked
by, so its cost in errors is bounded by its nesting, not by its item count."""
