"""The record on disk: opening and locking it, its tables and schema, migrations, recovery and
compaction.
"""
