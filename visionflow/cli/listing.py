"""``visionflow list``: what the registries hold, nets grouped by family."""

from __future__ import annotations

import textwrap


def list_command(kind: str | None) -> int:
    from visionflow.registry import REGISTRIES

    kinds = [kind] if kind else list(REGISTRIES)
    for name in kinds:
        registry = REGISTRIES[name]
        print(f"{name}:")
        families = registry.families()
        for family in families.values():
            print(f"  {family.name} ({family.output}):")
            for entry_name in family.names():
                _print_entry(registry.get(entry_name), indent=4)
        for entry in registry.entries():
            if entry.tags.get("family") not in families:
                _print_entry(entry, indent=2)
    return 0


def _print_entry(entry, indent: int) -> None:
    batch = entry.tags.get("batch")
    suffix = f"  [{batch.__name__}]" if batch is not None else ""
    description = textwrap.shorten(entry.description or "", 70)
    print(f"{' ' * indent}{entry.name:24s} {description}{suffix}")
