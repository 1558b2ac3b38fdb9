"""ICAR Animal Data Exchange (ADE): the record's events as ADE resources and back, checked
against the bundled JSON Schemas (`schemas/`, Apache 2.0)."""
