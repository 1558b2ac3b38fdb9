"""Arrow schemas of every table in a record, the schema version, and metadata keys."""

from __future__ import annotations

import json

import pyarrow as pa

SCHEMA_VERSION = 7
"""Version of the record layout this herdrecord writes; migrations move older records up.

A change to a table here needs a migration that moves records to it, and the migration that
created the old shape must keep its own frozen copy of it (see `0001_initial.py`)."""

DEFAULT_BEHAVIOURS: tuple[str, ...] = (
    "lying_lateral",
    "lying_sternal",
    "sitting",
    "standing",
    "walking",
    "eating",
    "drinking",
    "exploring",
    "interacting",
)
DEFAULT_EMBEDDER_NAME = "dinov3-vits16"
DEFAULT_EMBEDDER_DIM = 384
DEFAULT_EMBEDDER_METRIC = "cosine"

# Keys of the `metadata` table (key -> JSON value).
META_SCHEMA_VERSION = "schema_version"
META_EMBEDDER = "embedder"  # {"name": str, "dim": int, "metric": str}
META_BEHAVIOURS = "behaviours"  # list[str]
META_FARM_ID = "farm_id"
META_FARM_FROM_FIRST_BATCH = "farm_from_first_batch"  # true until the first batch names it
DEFAULT_FARM_ID = "farm-a"  # the farm of a record made without one, until a batch names it
META_CREATED_AT = "created_at"
META_CREATED_BY = "created_by"  # herdrecord version that created the record
META_RETAINED_THROUGH = "retained_through"  # last day retention tiers were applied to

UTC_TIME = pa.timestamp("us", tz="UTC")


def _f(name: str, type_: pa.DataType, nullable: bool = True, doc: str = "") -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc} if doc else None)


def _tracklet_key() -> list[pa.Field]:
    return [
        _f("batch_id", pa.string(), False, "edge batch that delivered the row (idempotency key)"),
        _f("device_id", pa.string(), False, "edge device that tracked it"),
        _f("track_id", pa.string(), False, "tracklet id, unique per device"),
    ]


def _bbox() -> list[pa.Field]:
    return [
        _f("bbox_x", pa.float32(), False, "bounding box left, px"),
        _f("bbox_y", pa.float32(), False, "bounding box top, px"),
        _f("bbox_w", pa.float32(), False, "bounding box width, px"),
        _f("bbox_h", pa.float32(), False, "bounding box height, px"),
    ]


def embedding_type(dim: int) -> pa.DataType:
    """Return the Arrow type of one stored embedding: `dim` float16 values."""
    return pa.list_(pa.float16(), dim)


def metadata_schema() -> pa.Schema:
    """Return the schema of `metadata`: one row per key, the value as JSON."""
    return pa.schema(
        [
            _f("key", pa.string(), False, "metadata key"),
            _f("value", pa.string(), False, "value, JSON-encoded"),
        ]
    )


def migrations_schema() -> pa.Schema:
    """Return the schema of `migrations`: the log of applied migrations."""
    return pa.schema(
        [
            _f("version", pa.int32(), False, "migration number"),
            _f("name", pa.string(), False, "migration name"),
            _f("applied_at", UTC_TIME, False, "when it was applied, UTC"),
            _f("herdrecord_version", pa.string(), False, "herdrecord that applied it"),
        ]
    )


def batches_schema() -> pa.Schema:
    """Return the schema of `batches`, the ledger: a row here is what makes a batch visible."""
    return pa.schema(
        [
            _f("batch_id", pa.string(), False, "idempotency key sent by the edge"),
            _f("farm_id", pa.string(), False, "farm the batch comes from"),
            _f("device_id", pa.string(), False, "edge device that sent it"),
            _f("content_sha256", pa.string(), False, "hash of the canonical batch content"),
            _f("committed_at", UTC_TIME, False, "when the batch became visible, UTC"),
            _f("source", pa.string(), False, "file name or channel it came through"),
            _f("n_tracklets", pa.int32(), False, "tracklets in the batch"),
            _f("n_samples", pa.int32(), False, "embedding samples in the batch"),
            _f("n_observations", pa.int32(), False, "observation rows in the batch"),
            _f("n_keyframes", pa.int32(), False, "keyframes in the batch"),
        ]
    )


def animals_schema() -> pa.Schema:
    """Return the schema of `animals`: one row per individual."""
    return pa.schema(
        [
            _f("animal_id", pa.string(), False, "stable id of the individual"),
            _f("display_name", pa.string(), True, "name people use"),
            _f("tag_id", pa.string(), True, "RFID / ear tag"),
            _f("species", pa.string(), False, "e.g. pig, cattle"),
            _f("sex", pa.string(), True, "female, male, castrate"),
            _f("birth_date", pa.date32(), True, "date of birth"),
            _f("pen_id", pa.string(), True, "current pen"),
            _f("status", pa.string(), False, "active, departed, or merged"),
            _f("merged_into", pa.string(), True, "animal this one was merged into"),
            _f("provisional", pa.bool_(), False, "enrolled by the system, not yet named"),
            _f("created_at", UTC_TIME, False, "when the row was created, UTC"),
        ]
    )


def tracklets_schema(dim: int) -> pa.Schema:
    """Return the schema of `tracklets`: one continuous track of one unknown animal."""
    return pa.schema(
        [
            *_tracklet_key(),
            _f("farm_id", pa.string(), False, "farm"),
            _f("camera_id", pa.string(), False, "camera"),
            _f("pen_id", pa.string(), False, "pen the camera watches"),
            _f("start", UTC_TIME, False, "first frame, UTC"),
            _f("end", UTC_TIME, False, "last frame, UTC"),
            _f("tag_id", pa.string(), True, "RFID / ear-tag read during the tracklet"),
            _f("n_samples", pa.int32(), False, "embedding samples"),
            _f("n_observations", pa.int32(), False, "observation rows"),
            _f("n_keyframes", pa.int32(), False, "keyframes"),
            *tracklet_descriptor_fields(dim),
        ]
    )


def tracklet_descriptor_fields(dim: int) -> list[pa.Field]:
    """Return the fields of a tracklet's re-ID descriptor, derived from its samples at ingest."""
    return [
        _f(
            "descriptor",
            embedding_type(dim),
            True,
            "quality-weighted mean of the unit sample embeddings, L2-normalised, float16",
        ),
        _f("descriptor_weight", pa.float32(), True, "summed sample quality behind the descriptor"),
    ]


def samples_schema(dim: int) -> pa.Schema:
    """Return the schema of `samples`: sample embeddings of tracklets, float16."""
    return pa.schema(
        [
            *_tracklet_key(),
            _f("t", UTC_TIME, False, "sample time, UTC"),
            _f("quality", pa.float32(), False, "edge quality score, 0..1"),
            _f("embedding", embedding_type(dim), False, "L2-normalised embedding, float16"),
        ]
    )


def observations_schema() -> pa.Schema:
    """Return the schema of `observations`: timestamped samples of a tracklet's state."""
    return pa.schema(
        [
            *_tracklet_key(),
            _f("t", UTC_TIME, False, "observation time, UTC"),
            *_bbox(),
            _f("area_px", pa.float32(), False, "segmented mask area, px^2"),
            _f("behaviour", pa.string(), False, "behaviour class from the record's vocabulary"),
            _f("behaviour_conf", pa.float32(), False, "classifier confidence, 0..1"),
            _f("speed_px_s", pa.float32(), False, "speed of the bbox centre, px/s"),
            _f("gait_score", pa.float32(), True, "edge gait indicator when walking, else null"),
            _f(
                "thin_s",
                pa.int32(),
                True,
                "coarsest thinning the row survives, s: a retention tier of I seconds keeps "
                "rows with thin_s >= I (each tracklet's first row per I-second step and its "
                "last row)",
            ),
        ]
    )


def keyframes_schema() -> pa.Schema:
    """Return the schema of `keyframes`: small JPEG crops, the visual record."""
    return pa.schema(
        [
            *_tracklet_key(),
            _f("t", UTC_TIME, False, "frame time, UTC"),
            *_bbox(),
            _f("jpeg", pa.binary(), False, "JPEG bytes of the crop"),
            _f("jpeg_bytes", pa.int32(), False, "size of the JPEG, bytes"),
        ]
    )


def links_schema() -> pa.Schema:
    """Return the schema of `links`: append-only tracklet -> animal decisions (the audit trail)."""
    return pa.schema(
        [
            _f("device_id", pa.string(), False, "edge device of the tracklet"),
            _f("track_id", pa.string(), False, "tracklet id"),
            _f("animal_id", pa.string(), True, "linked animal, null when unknown"),
            _f("score", pa.float32(), True, "similarity of the tracklet to the animal, cosine"),
            _f("margin", pa.float32(), True, "score minus the runner-up's"),
            _f(
                "method",
                pa.string(),
                False,
                "auto, tag, anchored (chained to a tag or answer), review",
            ),
            _f("decided_by", pa.string(), False, "system or the reviewer's name"),
            _f("decided_at", UTC_TIME, False, "when the decision was made, UTC"),
            _f(
                "confidence",
                pa.float32(),
                True,
                "probability that the link is right (calibrated on the record's own scores; "
                "1 for answers and tag reads), null when unknown or not yet estimated",
            ),
        ]
    )


def events_schema() -> pa.Schema:
    """Return the schema of `events`: health and production events, append-only."""
    return pa.schema(
        [
            _f("event_id", pa.string(), False, "unique id"),
            _f("animal_id", pa.string(), False, "animal"),
            _f("kind", pa.string(), False, "lameness, diagnosis, treatment, weight, move, ..."),
            _f("at", UTC_TIME, False, "when it happened, UTC"),
            _f("value", pa.float64(), True, "score, kg, dose, litter size ... by kind"),
            _f("scale", pa.string(), True, "scale of a score, e.g. 0-3"),
            _f("code", pa.string(), True, "diagnosis / product / destination pen code"),
            _f("note", pa.string(), True, "free text"),
            _f("author", pa.string(), False, "who recorded it"),
            _f("recorded_at", UTC_TIME, False, "when it was recorded, UTC"),
            _f("supersedes", pa.string(), True, "event_id this row corrects"),
            _f("unit", pa.string(), True, "unit of value: kg, ml, mg/kg, score, head"),
            _f("result", pa.string(), True, "outcome: positive/negative, born alive ..."),
            _f("withdrawal_days", pa.float32(), True, "treatment withdrawal period, days"),
            _f("retracted", pa.bool_(), True, "true when this row withdraws the one it supersedes"),
            _f(
                "event_key",
                pa.string(),
                True,
                "the key the sender gave the event (unique per record: a repeat of the key is "
                "a duplicate, not stored), null when none was given",
            ),
        ]
    )


def days_schema() -> pa.Schema:
    """Return the schema of `days`: one animal's materialised day, derived from its links."""
    minutes = pa.struct([("behaviour", pa.string()), ("minutes", pa.float32())])
    keyframe_ref = pa.struct(
        [("device_id", pa.string()), ("track_id", pa.string()), ("t", UTC_TIME)]
    )
    return pa.schema(
        [
            _f("animal_id", pa.string(), False, "animal"),
            _f("day", pa.date32(), False, "UTC calendar day"),
            _f("pen_id", pa.string(), False, "pen it spent most of the observed day in"),
            _f("n_tracklets", pa.int32(), False, "tracklets linked to the animal that day"),
            _f("observed_min", pa.float32(), False, "minutes covered by its tracklets"),
            _f("behaviour_min", pa.list_(minutes), False, "observed minutes per behaviour class"),
            _f("lying_min", pa.float32(), False, "observed minutes in lying classes"),
            _f("lying_share", pa.float32(), False, "lying minutes / observed minutes, 0..1"),
            _f("eating_min", pa.float32(), True, "observed minutes eating (null without class)"),
            _f(
                "activity_index",
                pa.float32(),
                False,
                "share of observed time walking, eating, drinking, exploring or interacting",
            ),
            _f("distance_px", pa.float32(), False, "distance moved: speed x time, px"),
            _f("mean_speed_px_s", pa.float32(), False, "distance / observed time, px/s"),
            _f("walking_speed_px_s", pa.float32(), True, "median speed while walking, px/s"),
            _f("lying_bouts", pa.int32(), False, "lying bouts that started that day"),
            _f("lying_bout_mean_min", pa.float32(), True, "mean length of those bouts, min"),
            _f("gait_mean", pa.float32(), True, "mean edge gait indicator (higher = worse)"),
            _f("gait_n", pa.int32(), False, "observations carrying a gait indicator"),
            _f("area_px", pa.float32(), True, "median projected area while standing, px^2"),
            _f("keyframes", pa.list_(keyframe_ref), False, "the day's chosen keyframes"),
            _f(
                "link_confidence",
                pa.float32(),
                True,
                "time-weighted mean probability that the day's links are right",
            ),
            _f(
                "anomaly_z",
                pa.float32(),
                True,
                "largest deviation over the measures (mean of own and pen-mate z), sigma; "
                "flags are raised at 2.5",
            ),
            _f("anomalies", pa.list_(pa.string()), False, "flags, e.g. lying_up, activity_down"),
            _f("derived_at", UTC_TIME, False, "when the row was derived, UTC"),
        ]
    )


def pool_schema(dim: int) -> pa.Schema:
    """Return the schema of `pool`: the re-ID gallery, budgeted exemplars per animal."""
    return pa.schema(
        [
            _f("exemplar_id", pa.int64(), False, "id of the exemplar (the FAISS id)"),
            _f("animal_id", pa.string(), False, "animal the exemplar shows"),
            _f("device_id", pa.string(), False, "device of the source tracklet"),
            _f("track_id", pa.string(), False, "source tracklet (first of its chain)"),
            _f("pen_id", pa.string(), False, "pen it was seen in"),
            _f("observed_at", UTC_TIME, False, "when the source was seen, UTC"),
            _f("evidence_s", pa.float32(), False, "seconds of track behind the exemplar"),
            _f("embedding", embedding_type(dim), False, "L2-normalised descriptor, float16"),
        ]
    )


def constraints_schema() -> pa.Schema:
    """Return the schema of `constraints`: people's answers, which linking never overrides."""
    return pa.schema(
        [
            _f("device_id", pa.string(), False, "edge device of the tracklet"),
            _f("track_id", pa.string(), False, "tracklet id"),
            _f("animal_id", pa.string(), False, "animal the answer is about"),
            _f("kind", pa.string(), False, "must_link or cannot_link"),
            _f("decided_by", pa.string(), False, "who answered"),
            _f("decided_at", UTC_TIME, False, "when, UTC"),
        ]
    )


def api_keys_schema() -> pa.Schema:
    """Return the schema of `api_keys`: who may use the HTTP service, with which role."""
    return pa.schema(
        [
            _f("name", pa.string(), False, "the principal: a device, a person, a program"),
            _f("role", pa.string(), False, "edge, vet, analyst or admin"),
            _f("key_id", pa.string(), False, "public part of the key, to find its hash"),
            _f("key_sha256", pa.string(), False, "SHA-256 of the whole key (hex); never the key"),
            _f("created_at", UTC_TIME, False, "when the key was made, UTC"),
            _f("created_by", pa.string(), False, "who made it"),
            _f("revoked_at", UTC_TIME, True, "when it was revoked, UTC; null while valid"),
            _f(
                "devices",
                pa.list_(pa.string()),
                True,
                "the devices an edge key may upload batches for; null or empty for a key "
                "made before keys named them (it may upload for any device)",
            ),
        ]
    )


def identifiers_schema() -> pa.Schema:
    """Return the schema of `identifiers`: the (scheme, id) pairs an animal is known by, as
    ICAR ADE names animals, with the days each holds (append-only)."""
    return pa.schema(
        [
            _f("animal_id", pa.string(), False, "the animal"),
            _f(
                "scheme",
                pa.string(),
                False,
                "who issues the id: an ICAR ADE scheme (eu.animalId, managementTag, ...) or "
                "org.herdrecord.tag for the ear tag the edge reads",
            ),
            _f("id", pa.string(), False, "the identifier under that scheme"),
            _f("valid_from", pa.date32(), True, "first day it holds; null: from the start"),
            _f("valid_to", pa.date32(), True, "last day it holds; null: it still holds"),
            _f("recorded_at", UTC_TIME, False, "when it was recorded, UTC"),
            _f("recorded_by", pa.string(), False, "who recorded it"),
        ]
    )


def tabular_columns(schema: pa.Schema) -> list[str]:
    """Return the columns of `schema` that are not vectors (DuckDB cannot read float16)."""
    return [f.name for f in schema if not pa.types.is_fixed_size_list(f.type)]


BATCH_TABLES: tuple[str, ...] = ("tracklets", "samples", "observations", "keyframes")
"""Tables whose rows arrive in edge batches and carry their batch_id."""


def table_schemas(dim: int) -> dict[str, pa.Schema]:
    """Return every table's schema by table name, for an embedder of dimension `dim`."""
    schemas = {
        "metadata": metadata_schema(),
        "migrations": migrations_schema(),
        "batches": batches_schema(),
        "animals": animals_schema(),
        "tracklets": tracklets_schema(dim),
        "samples": samples_schema(dim),
        "observations": observations_schema(),
        "keyframes": keyframes_schema(),
        "links": links_schema(),
        "events": events_schema(),
        "days": days_schema(),
        "pool": pool_schema(dim),
        "constraints": constraints_schema(),
        "api_keys": api_keys_schema(),
        "identifiers": identifiers_schema(),
    }
    return {
        name: schema.with_metadata(
            {"herdrecord.table": name, "herdrecord.schema_version": str(SCHEMA_VERSION)}
        )
        for name, schema in schemas.items()
    }


def schema_to_json(schema: pa.Schema) -> dict[str, object]:
    """Return a stable JSON-able description of an Arrow schema (for the snapshots)."""
    return {
        "metadata": {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()},
        "fields": [
            {
                "name": field.name,
                "type": str(field.type),
                "nullable": field.nullable,
                "doc": (field.metadata or {}).get(b"doc", b"").decode(),
            }
            for field in schema
        ],
    }


def snapshot_files() -> dict[str, str]:
    """Return the generated table schemas of `schemas/tables/`, file name -> text."""
    return {
        f"tables/{name}.json": json.dumps(schema_to_json(schema), indent=2) + "\n"
        for name, schema in table_schemas(DEFAULT_EMBEDDER_DIM).items()
    }
