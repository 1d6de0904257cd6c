"""Installing raysearch with every extra must not change what the base install chose:
torchattacks pinned ``requests~=2.25.1`` and downgraded it; the extras now depend only on
packages that constrain nothing the base needs."""

from __future__ import annotations

from importlib import metadata

from packaging.requirements import Requirement


def _extras() -> list[Requirement]:
    requirements = [Requirement(r) for r in metadata.requires("raysearch") or []]
    return [r for r in requirements if r.marker is not None and "extra" in str(r.marker)]


def test_no_extra_brings_a_requirement_on_requests() -> None:
    extras = _extras()
    assert {r.name for r in extras} >= {"pyautoattack", "pytest"}
    for requirement in extras:
        dependencies = [Requirement(r) for r in metadata.requires(requirement.name) or []]
        installed = [d for d in dependencies if d.marker is None or d.marker.evaluate({"extra": ""})]
        assert "requests" not in {d.name for d in installed}, requirement.name


def test_the_installed_requests_satisfies_every_installed_distribution() -> None:
    version = metadata.version("requests")
    for dist in metadata.distributions():
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.name != "requests":
                continue
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue  # only an optional extra of that distribution asks for it
            assert requirement.specifier.contains(version, prereleases=True), (dist.metadata["Name"], text)
