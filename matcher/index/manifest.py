"""Index manifests: read the published one, refuse another model or format, check the files it lists.

A version folder's ``manifest.json`` records how its vectors were made (the embedder's fingerprint), its build
settings, dimensions, counts, brands, the operating threshold and every file's size and sha256.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import store
from ..errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError
from ..inputs import file_sha256

FINGERPRINT_KEYS = ("descriptor", "backbone_timm", "weights_sha256", "preprocessing", "runtime")


def published_manifest(index_dir: str | Path) -> tuple[Path, dict]:
    """(folder, manifest) of the published version of ``index_dir``; IndexNotFoundError when there is none."""
    index_dir = Path(index_dir)
    folder = store.current_version(index_dir)
    if folder is None:
        what = "is not an index folder (no CURRENT pointer)" if index_dir.exists() else "not found"
        raise IndexNotFoundError(f"{index_dir}: index {what}; build one with `matcher index build`")
    return folder, read_manifest(folder)


def read_manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(f"{path}: manifest missing") from None
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path}: manifest unreadable ({exc})") from None
    if not isinstance(manifest, dict):
        raise IndexCorruptError(f"{path}: manifest is not a JSON object")
    fmt = manifest.get("format_version")
    if fmt != store.FORMAT_VERSION:
        newer = isinstance(fmt, int) and fmt > store.FORMAT_VERSION
        raise IndexMismatchError(
            f"{path}: index format {fmt!r}, this matcher reads format {store.FORMAT_VERSION}"
            + ("; upgrade matcher" if newer else "; rebuild the index with `matcher index build`")
        )
    return manifest


def check_compatible(manifest: dict, fingerprint: dict, index_dir: Path) -> None:
    """Refuse an index whose vectors were made differently from ``fingerprint``; names both sides."""
    theirs = manifest.get("fingerprint", {})
    for key in FINGERPRINT_KEYS:
        if theirs.get(key) != fingerprint.get(key):
            raise IndexMismatchError(
                f"{index_dir}: index built with {key}={_short(theirs.get(key))}, "
                f"but this matcher uses {key}={_short(fingerprint.get(key))}; rebuild with `matcher index build`"
            )


def region_runtime_of(fingerprint: dict) -> str | None:
    """The runtime family that embedded an index's region crops, from its manifest's ``fingerprint`` (indexes
    saved before the crops had their own record embedded them with the CNN's runtime)."""
    return fingerprint.get("region_runtime", fingerprint.get("runtime"))


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def check_files(folder: Path, manifest: dict, *, hashes: bool = False) -> None:
    """Every file the manifest lists exists with its size (and, with hashes=True, its sha256)."""
    for name, meta in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise IndexCorruptError(f"{path}: listed in manifest.json but missing")
        if path.stat().st_size != meta.get("bytes"):
            raise IndexCorruptError(f"{path}: size {path.stat().st_size} bytes, manifest says {meta.get('bytes')}")
        if hashes and file_sha256(path) != meta.get("sha256"):
            raise IndexCorruptError(f"{path}: content does not match the sha256 in manifest.json")
