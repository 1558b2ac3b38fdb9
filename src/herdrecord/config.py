"""Settings: every tunable of herdrecord, read from arguments or HERDRECORD_* variables."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator
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
    max_bulk_file_bytes: int = Field(
        default=2 * 1024 * 1024 * 1024,
        gt=0,
        description="Largest bulk Parquet file, in bytes its values take once decoded (read "
        "from its footer and dictionaries before any value is); a 1,000-animal day takes "
        "about 0.5 GB. Bigger files are refused whole: write a day as several files.",
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
    keyframes_per_day: int = Field(
        default=6,
        gt=0,
        le=64,
        description="Keyframes chosen for each animal-day (by quality, spread over the day and "
        "its behaviours); older keyframes are thinned to these.",
    )
    budget_mb_per_animal_year: float = Field(
        default=94.0,
        gt=0.0,
        description="Storage budget per animal per year, MB (10^6 bytes), that "
        "`herdrecord budget` checks the record against.",
    )
    retention_enabled: bool = Field(
        default=True,
        description="Apply the retention tiers automatically each time linking closes a new "
        "day (off: only `herdrecord compact` applies them).",
    )
    retain_full_observations_days: float = Field(
        default=14.0,
        ge=0.0,
        description="Days observations are kept at the edge's full rate; older ones are "
        "thinned to one per HERDRECORD_THIN_OBSERVATIONS_TO_S per tracklet.",
    )
    thin_observations_to_s: int = Field(
        default=120,
        description="Seconds between kept observations after the full-rate days: 60, 120, "
        "600, 1200 or 3600.",
    )
    retain_thinned_observations_days: float = Field(
        default=90.0,
        ge=0.0,
        description="Days thinned observations are kept at that rate; older ones are thinned "
        "again to one per HERDRECORD_THIN_OLD_OBSERVATIONS_TO_S.",
    )
    thin_old_observations_to_s: int = Field(
        default=600,
        description="Seconds between kept observations in the oldest tier: 60, 120, 600, "
        "1200 or 3600.",
    )
    retain_samples_days: float = Field(
        default=30.0,
        ge=0.0,
        description="Days sample embeddings are kept; older ones are dropped (each tracklet "
        "keeps its descriptor, which is what linking reads).",
    )
    retain_keyframes_days: float = Field(
        default=7.0,
        ge=0.0,
        description="Days all keyframes are kept; older ones are thinned to those the "
        "animal-days chose.",
    )
    sql_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        description="Seconds one `herdrecord sql` query may run; its process is then stopped "
        "and the query fails.",
    )
    sql_memory_limit: str = Field(
        default="1GB",
        description="Memory one `herdrecord sql` query may use, in DuckDB's syntax (512MB, "
        "2GiB; at least 64MB); nothing spills to disk, so a query that needs more fails.",
    )
    sql_max_rows: int = Field(
        default=100_000,
        gt=0,
        description="Most rows one `herdrecord sql` query returns; a longer result is cut "
        "there, with a notice.",
    )
    sql_threads: int = Field(
        default=4,
        gt=0,
        le=1024,
        description="Threads DuckDB may use for one `herdrecord sql` query.",
    )
    sql_max_result_bytes: int = Field(
        default=64 * 2**20,
        gt=0,
        description="Most bytes one `herdrecord sql` result may hold (its Arrow columns, "
        "as read); a bigger result fails, naming this setting: select fewer columns or "
        "rows, or aggregate.",
    )
    sql_process_headroom: str = Field(
        default="1GB",
        description="Address space the SQL sandbox's process may map beyond its loaded "
        "libraries and HERDRECORD_SQL_MEMORY_LIMIT (DuckDB's syntax, at least 64MB): an OS "
        "limit (RLIMIT_AS), so a query that allocates past DuckDB's own accounting fails "
        "instead of growing the process.",
    )
    sql_max_concurrent: int = Field(
        default=2,
        gt=0,
        description="`herdrecord serve`: most SQL queries run at once (each in a process of "
        "its own); a query that finds them all busy waits HERDRECORD_SQL_QUEUE_S, then gets "
        "429 with Retry-After.",
    )
    sql_queue_s: float = Field(
        default=5.0,
        ge=0.0,
        description="`herdrecord serve`: seconds a SQL query waits for one of "
        "HERDRECORD_SQL_MAX_CONCURRENT to finish before it is refused with 429.",
    )
    sql_warm_processes: int = Field(
        default=1,
        ge=0,
        le=8,
        description="`herdrecord serve`: sandbox processes kept started ahead (from the "
        "first SQL query on), their libraries loaded, so a query does not wait for Python to "
        "start; each still runs exactly one query and exits.",
    )
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="Options for a record on object storage (s3://bucket/prefix), as JSON in "
        "Lance's names: aws_access_key_id, aws_secret_access_key, aws_region, aws_endpoint "
        "(an S3-compatible server), allow_http. Empty: the AWS_* variables and the machine's "
        "credentials are used.",
    )
    record: str | None = Field(
        default=None,
        description="The record `herdrecord serve` serves (a directory); the command's PATH "
        "argument sets it, and `create_app` reads it from here.",
    )
    api_max_body_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Largest HTTP request body the service reads, in bytes as sent (gzip "
        "counts compressed); a larger one is refused with 413 before it is stored.",
    )
    api_refusal_drain_s: float = Field(
        default=10.0,
        ge=0.0,
        description="After answering before the body is read (401, 403, 413), the service "
        "reads and discards the rest of the body for at most this many seconds (and never "
        "past HERDRECORD_API_MAX_BODY_BYTES), so a client still sending reads the answer; "
        "then it closes the connection.",
    )
    api_link_idle_s: float = Field(
        default=2.0,
        ge=0.0,
        description="After uploads, the service links new tracklets once no write has "
        "arrived for this many seconds.",
    )
    api_link_max_delay_s: float = Field(
        default=300.0,
        gt=0.0,
        description="Longest the service leaves uploaded tracklets unlinked while uploads "
        "keep arriving; linking then runs between two writes.",
    )
    api_key_cache_s: float = Field(
        default=1.0,
        ge=0.0,
        description="Seconds the service trusts its copy of the API keys before checking "
        "the record for added or revoked keys.",
    )
    api_page_limit: int = Field(
        default=1000,
        gt=0,
        description="Most rows one HTTP list response returns (animals, events, "
        "keyframes); page with limit and offset.",
    )
    ui_session_hours: float = Field(
        default=12.0,
        gt=0.0,
        le=24 * 90,
        description="Hours a sign-in to the web pages lasts before the person signs in "
        "again with their key.",
    )
    ui_allow_http: bool = Field(
        default=False,
        description="Let people sign in to the pages over plain HTTP from other machines "
        "(keys then cross the network readable); off, only HTTPS or this machine may.",
    )
    journal_sync_s: float = Field(
        default=2.0,
        gt=0.0,
        description="Most seconds the service leaves committed uploads only in the intake "
        "journal: it then syncs the record to disk (one os.sync for every upload since the "
        "last) and clears them from the journal.",
    )
    edge_outbox: bool = Field(
        default=False,
        description="Keep every committed upload in the record's intake journal until "
        "`herdrecord push` has delivered it to a central service (an edge box's outbox); "
        "off, an entry is removed once the record is synced to disk.",
    )
    push_key: SecretStr | None = Field(
        default=None,
        description="The API key (role edge) that `herdrecord push` sends to the central "
        "service; --key overrides it.",
    )
    push_attempts: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="Tries `herdrecord push` makes per upload on connection failures, 5xx "
        "and 429 before it stops; what is not delivered waits for the next push.",
    )
    push_deadline_s: float = Field(
        default=600.0,
        gt=0.0,
        description="Longest one `herdrecord push` keeps retrying, in seconds; it then stops "
        "and what is not delivered waits for the next push.",
    )
    push_backoff_s: float = Field(
        default=1.0,
        gt=0.0,
        description="First wait between push retries, in seconds; doubled each retry up to "
        "60 s, with random jitter; a Retry-After from the server is honoured.",
    )
    push_timeout_s: float = Field(
        default=60.0,
        gt=0.0,
        description="Seconds one push request may take (connect, send, answer) before it "
        "counts as a failed try.",
    )
    api_max_small_body_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="Largest HTTP request body of every route but batch uploads (SQL, "
        "events, review answers, keys, the pages' forms), in bytes; a larger one is refused "
        "with 413 before it is read.",
    )
    api_body_timeout_s: float = Field(
        default=120.0,
        gt=0.0,
        description="Seconds a whole HTTP request body may take to arrive; a slower one is "
        "refused with 408 and its connection closed.",
    )
    api_keep_alive_s: int = Field(
        default=5,
        gt=0,
        description="`herdrecord serve`: seconds an idle HTTP connection is kept open for "
        "its next request.",
    )
    api_max_connections: int = Field(
        default=200,
        gt=0,
        description="`herdrecord serve`: most connections and requests served at once; "
        "past it new requests get 503.",
    )
    api_header_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        description="`herdrecord serve`: seconds a client has to send a request's headers "
        "(on a new connection, or after the previous answer); then the connection is closed.",
    )
    max_event_rows: int = Field(
        default=100_000,
        gt=0,
        description="Most events one import takes (CSV rows or ADE events); a longer file is "
        "refused whole, before any row is checked: split it (a 1,000-sow farm records about "
        "20,000 events a year).",
    )
    event_days_before_first_seen: int = Field(
        default=3650,
        ge=0,
        description="Days an event may lie before its animal was first seen (its first day "
        "in the record, or its enrolment) when no birth date bounds it; older dates are "
        "refused as typos (1970, a wrong century). Raise it to import long-lived animals' "
        "history.",
    )

    lameness_attention_0_3: int = Field(
        default=2,
        ge=1,
        le=3,
        description="Lowest lameness score on the 0-3 scale (pigs: Zinpro; dairy: AHDB) that "
        "needs a look: the herd page shows a lameness chip from it up (2 = moderately lame); "
        "the 0s and 1s of routine herd scoring show none.",
    )
    lameness_attention_1_5: int = Field(
        default=3,
        ge=2,
        le=5,
        description="Lowest lameness score on the 1-5 scale (Sprecher) that needs a look: the "
        "herd page shows a lameness chip from it up (3 = moderately lame, the scale's clinical "
        "lameness).",
    )
    day_coverage_floor_h: float = Field(
        default=6.0,
        ge=0.0,
        le=24.0,
        description="Hours an animal-day must be observed to count as a whole day: below it a "
        "day is partial (its behaviour bar only as tall as its observed hours, its weight "
        "estimate hollow and left out of the growth line) and the named cohort queries skip "
        "it, as the anomaly flags do: a short day's shares and areas are noise.",
    )

    @field_validator("sql_memory_limit", "sql_process_headroom")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        """Accept a DuckDB memory size of at least 64 MB; return it without spaces around."""
        if memory_bytes(value) < 64 * 10**6:
            raise ValueError(f"{value!r} is below the minimum, 64MB")
        return value.strip()


_MEMORY_UNITS = {
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def memory_bytes(text: str) -> int:
    """Return the bytes of a DuckDB memory size such as 512MB or 2GiB (ValueError if not one)."""
    # DuckDB itself is looser (it reads '-1GB' as 16 EiB), so sizes are checked here.
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*", text)
    unit = found.group(2).lower() if found else ""
    if not found or unit not in _MEMORY_UNITS:
        raise ValueError(f"{text!r} is not a memory size: expected e.g. 512MB, 1GB or 2GiB")
    return int(float(found.group(1)) * _MEMORY_UNITS[unit])
