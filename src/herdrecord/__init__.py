"""herdrecord: a longitudinal per-animal visual record database for livestock."""

from herdrecord.errors import (
    BatchConflict,
    BatchRejected,
    HerdrecordError,
    InvalidInput,
    MigrationRequired,
    RecordExists,
    RecordLocked,
    RecordNotFound,
    SchemaTooNew,
)

__version__ = "0.1.0"

from herdrecord.config import Settings
from herdrecord.store import Record, create_record, open_record

__all__ = [
    "BatchConflict",
    "BatchRejected",
    "HerdrecordError",
    "InvalidInput",
    "MigrationRequired",
    "Record",
    "RecordExists",
    "RecordLocked",
    "RecordNotFound",
    "SchemaTooNew",
    "Settings",
    "__version__",
    "create_record",
    "open_record",
]
