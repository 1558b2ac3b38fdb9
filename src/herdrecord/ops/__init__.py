"""Operating a record: the consistency check and backups."""
