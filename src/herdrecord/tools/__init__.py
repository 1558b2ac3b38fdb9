"""Developer tools (schema snapshots)."""
