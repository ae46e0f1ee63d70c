"""Named groups of pictures that other apps define, so classification and labeling can ask for them
without importing those apps (dependencies point one way: labeling → classification ← sitemaps).

The sitemaps app registers the kind "advertiser": the pictures shown in an advertiser's sitemap.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Collection:
    kind: str
    # key (e.g. an advertiser slug) → the ids of its pictures
    image_ids: Callable[[str], list[int]]
    # picture ids → the keys of the groups each belongs to
    keys_for: Callable[[Iterable[int]], dict[int, list[str]]]
    # every key with a human-readable name, for forms
    choices: Callable[[], list[tuple[str, str]]]


_registry: dict[str, Collection] = {}


def collection_register(collection: Collection) -> None:
    """Called from an AppConfig.ready(); registering a kind again replaces it."""
    _registry[collection.kind] = collection


def collection_get(kind: str) -> Collection | None:
    return _registry.get(kind)
