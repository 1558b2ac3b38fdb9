"""ADE documents against ICAR's JSON Schemas: a `referencing` registry over the bundled
snapshot, and every problem of a collection named by its JSON path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_DIR = Path(__file__).parent / "schemas"
SCHEMA_FOLDERS = ("collections", "enums", "resources", "types")
# The schemas name each other by relative paths (`../types/icarDateTimeType.json`) and carry
# no $id: each is registered under this base, so that those paths resolve among them.
BASE_URI = "https://ade.icar.invalid/"
MAX_PROBLEMS_PER_ITEM = 20  # one broken item can fail dozens of nested rules


def schema_uri(folder: str, name: str) -> str:
    """Return the URI the registry knows schema `folder/name.json` by."""
    return f"{BASE_URI}{folder}/{name}.json"


@cache
def ade_registry(schema_dir: Path = SCHEMA_DIR) -> Registry[Any]:
    """Return a registry of every schema of the snapshot in `schema_dir`."""
    resources = []
    for folder in SCHEMA_FOLDERS:
        for path in sorted((schema_dir / folder).glob("*.json")):
            contents = json.loads(path.read_text(encoding="utf-8"))
            resource = Resource.from_contents(contents, default_specification=DRAFT202012)
            resources.append((schema_uri(folder, path.stem), resource))
    registry: Registry[Any] = Registry().with_resources(resources)
    return registry.crawl()


def resource_schema_exists(resource: str, schema_dir: Path = SCHEMA_DIR) -> bool:
    """Return whether the snapshot has `resources/<resource>Resource.json`."""
    return (schema_dir / "resources" / f"{resource}Resource.json").is_file()


@cache
def _validator(folder: str, name: str, schema_dir: Path) -> Draft202012Validator:
    return Draft202012Validator(
        {"$ref": schema_uri(folder, name)},
        registry=ade_registry(schema_dir),
        format_checker=FormatChecker(),
    )


def schema_problems(
    document: Any, folder: str, name: str, path: str = "$", schema_dir: Path = SCHEMA_DIR
) -> list[str]:
    """Return `JSON path: problem` for each rule of schema `folder/name` that `document`
    (found at `path` of its file) breaks, in path order; empty when it is valid."""
    validator = _validator(folder, name, schema_dir)
    problems = sorted(_leaf_errors(validator.iter_errors(document)), key=lambda p: p[0])
    shown = [f"{path}{where[1:]}: {message}" for where, message in problems]
    if len(shown) > MAX_PROBLEMS_PER_ITEM:
        rest = len(shown) - MAX_PROBLEMS_PER_ITEM
        shown = [*shown[:MAX_PROBLEMS_PER_ITEM], f"{path}: ... and {rest} more problems"]
    return list(dict.fromkeys(shown))


def _leaf_errors(errors: Iterator[Any]) -> Iterator[tuple[str, str]]:
    """Yield (JSON path, message) of the errors, one line each and values cut short."""
    for error in errors:
        message = error.message
        if len(message) > 200:  # the message quotes the whole offending value
            message = message[:197] + "..."
        yield error.json_path, message.replace("\n", " ")
