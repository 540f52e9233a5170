"""The kind registry of ``router_training``: every manifest kind resolves to a loader.

(That the artifact format imports no kind module, and that no module imports one that imports it
back, are import-linter contracts in pyproject.toml.)"""

from __future__ import annotations

import typing

import pytest

from router_training.artifact import ArtifactError
from router_training.kinds import KINDS, kind_spec
from router_training.manifest import Manifest


def test_every_manifest_kind_is_registered_with_an_importable_loader() -> None:
    assert set(KINDS) == set(typing.get_args(Manifest.model_fields["kind"].annotation))
    for name, spec in KINDS.items():
        assert spec.name == name
        module, _, function = spec.loader.partition(":")
        assert callable(getattr(__import__(module, fromlist=[function]), function))
        assert spec.required_files and all(spec.required_files)


def test_an_unknown_kind_is_an_artifact_error() -> None:
    with pytest.raises(ArtifactError, match="unknown router kind 'nope'"):
        kind_spec("nope")
