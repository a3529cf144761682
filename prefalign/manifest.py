"""A folder's digest manifest: `MANIFEST.sha256` lists every file's sha256 (`sha256sum`
format, so `sha256sum -c MANIFEST.sha256` checks it by hand). The miniature world writes one
when it is made; the stages check each world file they read against it, so a file changed
in place (an image swapped, a pool edited) stops the stage instead of being used silently."""
from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

NAME = "MANIFEST.sha256"


class DigestError(ValueError):
    pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_manifest(folder) -> None:
    """Digest every file under `folder` (the manifest itself aside), in path order."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != NAME)
    lines = [f"{sha256(p.read_bytes())}  {p.relative_to(folder).as_posix()}\n" for p in files]
    (folder / NAME).write_text("".join(lines))


@functools.lru_cache(maxsize=4)
def read_manifest(folder: str) -> dict | None:
    path = Path(folder) / NAME
    if not path.exists():
        log.warning("%s: no digest manifest (a world made before manifests): its files are not checked", folder)
        return None
    return dict(reversed(line.rstrip("\n").split("  ", 1)) for line in path.read_text().splitlines())


def check(folder, path, data: bytes | None = None) -> None:
    """Raise DigestError unless `path` (a file under `folder`) has its manifest's digest.
    `data`: the file's bytes where the caller read them already."""
    folder = os.path.abspath(folder)
    digests = read_manifest(folder)
    if digests is None:
        return
    rel = Path(os.path.relpath(os.path.abspath(path), folder)).as_posix()
    expected = digests.get(rel)
    if expected is None:
        raise DigestError(f"{path}: not in {Path(folder) / NAME} (not made with the world)")
    if sha256(Path(path).read_bytes() if data is None else data) != expected:
        raise DigestError(f"{path}: sha256 differs from {Path(folder) / NAME}: changed since the world was made "
                          "(remake it: snakemake --forcerun make_world)")


def inside(folder, path) -> bool:
    folder, path = os.path.abspath(folder), os.path.abspath(path)
    return os.path.commonpath([folder, path]) == folder
