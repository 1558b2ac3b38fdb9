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

__all__ = [
    "BatchConflict",
    "BatchRejected",
    "HerdrecordError",
    "InvalidInput",
    "MigrationRequired",
    "RecordExists",
    "RecordLocked",
    "RecordNotFound",
    "SchemaTooNew",
    "__version__",
]
