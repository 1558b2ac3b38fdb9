"""Animals by ear tag: how events name an animal when the farm knows it by its tag."""

from __future__ import annotations

from herdrecord.errors import InvalidInput
from herdrecord.store.record import Record


def animals_by_tag(record: Record) -> dict[str, str]:
    """Return tag -> animal for the animals that carry a tag (merged ones left out; an
    active animal wins over a departed one carrying the same tag)."""
    animals = (
        record.table("animals")
        .to_lance()
        .to_table(columns=["animal_id", "tag_id", "status"], filter="tag_id IS NOT NULL")
    )
    return {
        row["tag_id"]: row["animal_id"]
        for row in sorted(animals.to_pylist(), key=lambda r: r["status"] == "active")
        if row["status"] != "merged"
    }


def animal_with_tag(record: Record, tag: str) -> str:
    """Return the animal the record links to ear tag `tag`; raise InvalidInput if none."""
    animal_id = animals_by_tag(record).get(tag.strip())
    if animal_id is None:
        raise InvalidInput(
            f"no animal in the record carries tag {tag!r} — `herdrecord animals` lists the tags"
        )
    return animal_id
