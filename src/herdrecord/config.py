"""Settings: every tunable of herdrecord, read from arguments or HERDRECORD_* variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Tunables of one herdrecord process; pass an instance, never import a global one."""

    model_config = SettingsConfigDict(env_prefix="HERDRECORD_", frozen=True, extra="forbid")

    lock_timeout_s: float = Field(
        default=30.0,
        ge=0.0,
        description="Seconds a writer waits for another writer's lock on a record before "
        "failing with a clear error (0 = fail at once).",
    )
    max_batch_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Largest accepted edge batch, in bytes after decompression; larger "
        "batches are rejected whole (it also bounds gzip bombs).",
    )
    max_tracklets_per_batch: int = Field(
        default=50_000,
        gt=0,
        description="Most tracklets one edge batch may carry.",
    )
    max_samples_per_tracklet: int = Field(
        default=256,
        gt=0,
        description="Most embedding samples one tracklet may carry.",
    )
    max_observations_per_tracklet: int = Field(
        default=20_000,
        gt=0,
        description="Most observation rows one tracklet may carry (a 6 fps edge must downsample).",
    )
    max_keyframes_per_tracklet: int = Field(
        default=16,
        gt=0,
        description="Most keyframes one tracklet may carry.",
    )
    max_keyframe_bytes: int = Field(
        default=256 * 1024,
        gt=0,
        description="Largest accepted keyframe JPEG, in bytes.",
    )
    write_group_rows: int = Field(
        default=3_000_000,
        gt=0,
        description="Ingest groups consecutive valid batches into one Lance write per table "
        "until this many observation rows are pending (a 1,000-animal barn's day is ~2.9 M); "
        "fewer, larger fragments.",
    )
    compact_after_fragments: int = Field(
        default=64,
        gt=0,
        description="After an ingest, a table with more fragments than this is compacted "
        "(Lance optimize), so a year of small uploads does not leave thousands of files.",
    )
    keep_versions_days: float = Field(
        default=7.0,
        ge=0.0,
        description="Days that old table versions are kept after compaction, for recovery "
        "and consistent backups.",
    )
