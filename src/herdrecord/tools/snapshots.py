"""Write the generated schema snapshots: `python -m herdrecord.tools.snapshots schemas`."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from herdrecord.config import Settings
from herdrecord.contract.models import edge_batch_json_schema
from herdrecord.query.views import data_dictionary, data_dictionary_markdown
from herdrecord.server import create_app
from herdrecord.store.schema import snapshot_files


def all_snapshot_files() -> dict[str, str]:
    """Return the generated content of `schemas/`: table and batch schemas, the data
    dictionary of the query views (Markdown for people, JSON for programs), and the HTTP
    service's OpenAPI document."""
    files = snapshot_files()
    files["edge-batch-1.schema.json"] = json.dumps(edge_batch_json_schema(), indent=2) + "\n"
    files["data-dictionary.md"] = data_dictionary_markdown()
    dictionary = {
        view: [asdict(column) for column in columns] for view, columns in data_dictionary().items()
    }
    files["data-dictionary.json"] = json.dumps(dictionary, indent=2) + "\n"
    files["openapi.json"] = json.dumps(openapi_document(), indent=2) + "\n"
    return files


def openapi_document() -> dict[str, object]:
    """Return the HTTP service's OpenAPI document (built without opening a record)."""
    document: dict[str, object] = create_app(Settings(record="unused")).openapi()
    return document


def write_snapshots(root: Path) -> list[Path]:
    """Write every snapshot file under `root`; return the paths written."""
    written = []
    for name, text in all_snapshot_files().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_snapshots(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(path)
