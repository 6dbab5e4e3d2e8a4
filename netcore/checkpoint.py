"""Checkpoint files (``.ncz``): one ZIP archive holding a JSON manifest and arrays in NumPy's ``.npy`` format.

Never pickle: arrays are written and read with ``allow_pickle=False``, every array's SHA-256 is in the manifest and
checked on load, and a file is rejected with :class:`CheckpointError` when it is truncated, altered, has members
missing or extra, declares shapes or dtypes its arrays do not have, is of an unknown format version, or is larger
than it says. Saving is atomic: a temporary file next to the target, flushed and fsynced, then renamed.

Besides the architecture and weights, a checkpoint holds everything exact resumption needs: optimizer state and
step counter, learning rate and schedule, epochs trained, the random generator's state and the state of the
callbacks that were training the model.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tempfile
import zipfile

import numpy as np

from netcore.errors import CheckpointError

FORMAT = "netcore-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"
#: Member holding the manifest's SHA-256, so a damaged manifest is caught like a damaged array.
MANIFEST_DIGEST = "manifest.sha256"
MAX_MANIFEST_BYTES = 16 * 2**20
#: npy header allowance per array (the format pads headers to 64 bytes; large shapes need a little more).
HEADER_BYTES = 4096


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def write(path, manifest: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write ``manifest`` (arrays' shapes, dtypes and hashes added) and ``arrays`` to ``path``, atomically."""
    path = os.fspath(path)
    blobs = {name: _npy_bytes(np.asarray(a)) for name, a in arrays.items()}
    manifest = dict(manifest, format=FORMAT, version=VERSION)
    manifest["arrays"] = {
        name: {
            "shape": list(np.asarray(arrays[name]).shape),
            "dtype": np.asarray(arrays[name]).dtype.str,
            "sha256": hashlib.sha256(blob).hexdigest(),
            "bytes": len(blob),
        }
        for name, blob in blobs.items()
    }
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):  # else mkstemp's error would name a temporary file the user never chose
        raise FileNotFoundError(errno.ENOENT, "cannot write a checkpoint into a missing directory", directory)
    handle, temporary = tempfile.mkstemp(prefix=".ncz-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as raw:
            with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED) as archive:
                text = json.dumps(manifest, indent=1).encode()
                archive.writestr(MANIFEST, text)
                archive.writestr(MANIFEST_DIGEST, hashlib.sha256(text).hexdigest())
                for name, blob in blobs.items():
                    archive.writestr(f"arrays/{name}.npy", blob)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes files private; a checkpoint is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read(path) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest and the verified arrays of a checkpoint file; :class:`CheckpointError` on any problem."""
    try:
        return _read(os.fspath(path))
    except CheckpointError:
        raise
    except Exception as exc:  # whatever a damaged archive provokes inside zipfile, json or numpy
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None


def _read(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a netcore checkpoint ({exc})") from None
    with archive:
        manifest = _manifest(path, archive)
        declared = manifest["arrays"]
        members = {info.filename: info for info in archive.infolist()}
        expected = {f"arrays/{name}.npy" for name in declared} | {MANIFEST, MANIFEST_DIGEST}
        if set(members) != expected:
            missing, extra = sorted(expected - set(members)), sorted(set(members) - expected)
            raise CheckpointError(f"{path}: members do not match the manifest (missing {missing}, extra {extra})")
        arrays = {
            name: _array(path, archive, members[f"arrays/{name}.npy"], name, spec) for name, spec in declared.items()
        }
    return manifest, arrays


def _manifest(path: str, archive: zipfile.ZipFile) -> dict:
    try:
        info = archive.getinfo(MANIFEST)
    except KeyError:
        raise CheckpointError(f"{path}: not a netcore checkpoint (no {MANIFEST})") from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise CheckpointError(f"{path}: manifest of {info.file_size} bytes is larger than any netcore writes")
    text = _member(path, archive, info, MAX_MANIFEST_BYTES)
    try:
        digest = _member(path, archive, archive.getinfo(MANIFEST_DIGEST), 64).decode("ascii")
    except (KeyError, UnicodeDecodeError):
        raise CheckpointError(f"{path}: not a netcore checkpoint (no valid {MANIFEST_DIGEST})") from None
    if hashlib.sha256(text).hexdigest() != digest:
        raise CheckpointError(f"{path}: the manifest fails its checksum (the file was altered or damaged)")
    try:
        manifest = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a netcore checkpoint")
    if manifest.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {manifest.get('version')!r} is not supported "
            f"(this netcore reads version {VERSION})"
        )
    if not isinstance(manifest.get("arrays"), dict):
        raise CheckpointError(f"{path}: manifest lists no arrays")
    return manifest


def _member(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """A member's bytes, refusing anything that claims or expands past ``limit`` (zip bombs)."""
    if info.file_size > limit:
        raise CheckpointError(f"{path}: {info.filename} is {info.file_size} bytes, more than its {limit} allowed")
    try:
        with archive.open(info) as handle:
            data = handle.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise CheckpointError(f"{path}: {info.filename} is damaged ({exc})") from None
    if len(data) > limit:
        raise CheckpointError(f"{path}: {info.filename} expands past its declared size")
    return data


def _array(path, archive, info, name, spec) -> np.ndarray:
    try:
        shape = tuple(int(d) for d in spec["shape"])
        dtype = np.dtype(spec["dtype"])
        digest = str(spec["sha256"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: manifest entry of array {name!r} is malformed ({exc})") from None
    if dtype.hasobject or any(d < 0 for d in shape):
        raise CheckpointError(f"{path}: array {name!r} declares an unsupported dtype or shape")
    limit = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize + HEADER_BYTES
    blob = _member(path, archive, info, limit)
    if hashlib.sha256(blob).hexdigest() != digest:
        raise CheckpointError(f"{path}: array {name!r} fails its checksum (the file was altered or damaged)")
    try:
        array = np.lib.format.read_array(io.BytesIO(blob), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CheckpointError(f"{path}: array {name!r} is unreadable ({exc})") from None
    if array.shape != shape or array.dtype != dtype:
        raise CheckpointError(f"{path}: array {name!r} is {array.dtype}{array.shape}, the manifest says {dtype}{shape}")
    return array
