"""Where backups lie: a local folder or any fsspec URL (`s3://bucket/prefix`).

S3 credentials come the usual AWS way (environment, profile, instance role); the endpoint
from `DUTYDESK_BACKUP_S3_ENDPOINT` for MinIO or moto.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def is_remote(destination: str) -> bool:
    """Whether the destination is a URL (`s3://...`) rather than a local folder."""
    return "://" in destination and not destination.startswith("file://")


def _filesystem(destination: str) -> Any:
    import fsspec

    from dutydesk.settings import get_settings

    protocol = destination.split("://", 1)[0]
    options: dict[str, Any] = {}
    endpoint = get_settings().backup_s3_endpoint.strip()
    if protocol in {"s3", "s3a"} and endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    return fsspec.filesystem(protocol, **options)


def join(destination: str, name: str) -> str:
    """The location of the file `name` in the destination."""
    if is_remote(destination):
        return destination.rstrip("/") + "/" + name
    return str(Path(destination.removeprefix("file://")) / name)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a local file, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def put(local: Path, location: str) -> None:
    """Store the local file at `location` (written under a temporary name, then moved)."""
    if is_remote(location):
        _filesystem(location).put_file(str(local), location)
        return
    target = Path(location)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(local, partial)
    partial.replace(target)


def fetch(location: str, local: Path) -> None:
    """Copy the file at `location` to the local path."""
    if is_remote(location):
        _filesystem(location).get_file(location, str(local))
        return
    shutil.copyfile(location, local)


def remove(location: str) -> None:
    """Delete the stored file (gone already is fine)."""
    if is_remote(location):
        filesystem = _filesystem(location)
        if filesystem.exists(location):
            filesystem.rm_file(location)
        return
    Path(location).unlink(missing_ok=True)


def compress(source: Path, into: Path) -> None:
    """zstd-compress a file."""
    import zstandard

    with source.open("rb") as reader, into.open("wb") as writer:
        zstandard.ZstdCompressor(level=3, threads=-1).copy_stream(reader, writer)


def decompress(source: Path, into: Path) -> None:
    """Undo `compress`."""
    import zstandard

    with source.open("rb") as reader, into.open("wb") as writer:
        zstandard.ZstdDecompressor().copy_stream(reader, writer)
