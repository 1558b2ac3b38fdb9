"""Write the generated schema snapshots: `python -m herdrecord.snapshots schemas`."""

from __future__ import annotations

import sys
from pathlib import Path

from herdrecord.schema import snapshot_files


def write_snapshots(root: Path) -> list[Path]:
    """Write every snapshot file under `root`; return the paths written."""
    written = []
    for name, text in snapshot_files().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_snapshots(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(path)
