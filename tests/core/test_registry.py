import pytest

from visionflow.errors import UnknownNameError
from visionflow.registry import REGISTRIES, Registry, close_matches


def make_registry() -> Registry:
    registry = Registry("widget")

    @registry.register("resnet18", batch=int)
    def resnet18():
        """A residual network.

        More text."""
        return "built"

    registry.add("resnet50", lambda: 50, description="bigger")
    return registry


def test_register_build_and_describe():
    registry = make_registry()
    assert registry.names() == ["resnet18", "resnet50"]
    assert registry.build("resnet18") == "built"
    entry = registry.get("resnet18")
    assert entry.description == "A residual network."
    assert entry.tags == {"batch": int}
    assert "resnet50" in registry and "vgg" not in registry and len(registry) == 2


def test_duplicate_name_raises_naming_the_first_owner():
    registry = make_registry()
    with pytest.raises(ValueError, match="widget 'resnet18' is already registered by .*resnet18"):
        registry.add("resnet18", lambda: None)


def test_unknown_name_suggests_close_matches():
    registry = make_registry()
    with pytest.raises(UnknownNameError) as info:
        registry.get("resnet81")
    assert "unknown widget 'resnet81'; did you mean 'resnet18'" in str(info.value)
    assert "visionflow list widgets" in info.value.hint


def test_unknown_name_without_close_match_has_no_suggestion():
    with pytest.raises(UnknownNameError) as info:
        make_registry().get("zzz")
    assert "did you mean" not in info.value.message


def test_close_matches_is_case_insensitive():
    assert close_matches("ResNet18", ["resnet18", "vgg16"]) == ["resnet18"]


def test_providers_are_imported_on_first_lookup(tmp_path, monkeypatch):
    (tmp_path / "vf_fake_provider.py").write_text(
        "from tests.core.test_registry import LAZY\nLAZY.add('thing', lambda: 1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert LAZY._entries == {}
    assert LAZY.names() == ["thing"]


LAZY = Registry("lazy", providers=("vf_fake_provider",))


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_builtin_registries_load_and_are_not_empty(kind):
    registry = REGISTRIES[kind]
    assert len(registry) > 0, f"no {kind} registered"
    for entry in registry.entries():
        assert entry.description, f"{kind} {entry.name!r} has no description"
