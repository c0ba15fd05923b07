"""Flat name -> builder registries for tasks, datamodules, networks, transform presets and stages.

Each registry knows the modules that fill it (its *providers*, by dotted name) and imports them on
first lookup, so the core never imports the packages that depend on it, and nothing is discovered
by walking packages. Duplicate names raise; unknown names raise with close matches.

    from visionflow.registry import TASKS
    @TASKS.register("image_classification", batch=ImageClassificationBatch)
    class ImageClassificationTask(LightningModule): ...
    TASKS.build("image_classification", num_classes=10)
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from visionflow.errors import UnknownNameError


@dataclass(frozen=True)
class Entry:
    """One registered builder. ``tags`` carries metadata such as the batch contract it speaks."""

    name: str
    builder: Callable[..., Any]
    description: str
    tags: dict[str, Any] = field(default_factory=dict)


def _first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def close_matches(name: str, candidates: Sequence[str]) -> list[str]:
    """Up to three candidates that look like ``name`` (case-insensitive), best first."""
    lowered = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    return [lowered[h] for h in hits]


def did_you_mean(name: str, candidates: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` or ``""`` when nothing is close."""
    hits = close_matches(name, candidates)
    if not hits:
        return ""
    return "; did you mean " + " or ".join(repr(h) for h in hits) + "?"


class Registry:
    """Names -> builders of one kind (``"task"``, ``"datamodule"``, ...)."""

    def __init__(self, kind: str, providers: Sequence[str] = ()):
        self.kind = kind
        self._providers = tuple(providers)
        self._loaded = False
        self._entries: dict[str, Entry] = {}
        self._families: dict[str, Family] = {}

    def register(self, name: str, *, description: str | None = None, **tags: Any):
        """Decorator: register a class or function under ``name``."""

        def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
            self.add(name, builder, description=description, **tags)
            return builder

        return decorator

    def add(
        self, name: str, builder: Callable[..., Any], *, description: str | None = None, **tags: Any
    ) -> None:
        if name in self._entries:
            existing = self._entries[name].builder
            raise ValueError(
                f"{self.kind} {name!r} is already registered by "
                f"{existing.__module__}.{getattr(existing, '__qualname__', existing)}"
            )
        self._entries[name] = Entry(name, builder, description or _first_doc_line(builder), tags)

    def _load_providers(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._providers:
            importlib.import_module(module)

    def get(self, name: str) -> Entry:
        self._load_providers()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, list(self._entries))}",
                hint=f"`visionflow list {self.kind}s` shows every {self.kind}",
            ) from None

    def build(self, name: str, /, **kwargs: Any) -> Any:
        return self.get(name).builder(**kwargs)

    def names(self) -> list[str]:
        self._load_providers()
        return sorted(self._entries)

    def entries(self) -> Iterator[Entry]:
        for name in self.names():
            yield self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load_providers()
        return name in self._entries

    def __len__(self) -> int:
        self._load_providers()
        return len(self._entries)

    def family(self, name: str, *, output: str) -> Family:
        """The entries tagged ``family=name``, declared once with the contract of their output
        (``NETS.family("classification", output="logits [B, K]")``); same family, same object."""
        existing = self._families.get(name)
        if existing is not None:
            if existing.output != output:
                raise ValueError(
                    f"{self.kind} family {name!r} is already declared with output "
                    f"{existing.output!r}"
                )
            return existing
        self._families[name] = Family(self, name, output)
        return self._families[name]

    def families(self) -> dict[str, Family]:
        """Every declared family by name (after loading the providers)."""
        self._load_providers()
        return dict(self._families)


class Family:
    """The part of a registry that shares one output contract, e.g. the detection networks.

    Entries registered through it carry the tags ``family`` and ``output``; lookups through it
    only find its own entries, so an unknown or wrong-family name lists the right alternatives."""

    def __init__(self, registry: Registry, name: str, output: str):
        self.registry = registry
        self.name = name
        self.output = output

    def register(self, name: str, *, description: str | None = None, **tags: Any):
        return self.registry.register(
            name, description=description, family=self.name, output=self.output, **tags
        )

    def add(
        self, name: str, builder: Callable[..., Any], *, description: str | None = None, **tags: Any
    ) -> None:
        self.registry.add(
            name, builder, description=description, family=self.name, output=self.output, **tags
        )

    def names(self) -> list[str]:
        return [e.name for e in self.registry.entries() if e.tags.get("family") == self.name]

    def get(self, name: str) -> Entry:
        entry = self.registry._entries.get(name) if name in self.registry else None
        if entry is None or entry.tags.get("family") != self.name:
            other = f" (it is a {entry.tags.get('family')} {self.registry.kind})" if entry else ""
            raise UnknownNameError(
                f"unknown {self.name} {self.registry.kind} {name!r}{other}"
                f"{did_you_mean(name, self.names())}",
                hint=f"`visionflow list {self.registry.kind}s` shows every {self.registry.kind} "
                f"by family",
            )
        return entry


TASKS = Registry("task", providers=("visionflow.tasks",))
DATAMODULES = Registry("datamodule", providers=("visionflow.datamodules",))
NETS = Registry("net", providers=("visionflow.tasks.nets",))
TRANSFORMS = Registry("transform", providers=("visionflow.datamodules.transforms",))
STAGES = Registry("stage", providers=("visionflow.pipelines",))

REGISTRIES = {r.kind + "s": r for r in (TASKS, DATAMODULES, NETS, TRANSFORMS, STAGES)}
