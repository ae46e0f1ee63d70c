"""A weights-only reader of PyTorch checkpoints, without torch: a state dict of numpy arrays.

A ``.pth`` file is pickles, and unpickling runs whatever callables the file names. This reader uses a
restricted unpickler whose ``find_class`` allows only what a state dict is made of (an OrderedDict, the
tensor rebuild function and the typed storage classes) and refuses any other global with ``UnsafeWeights``,
before anything is called. Tensors come back as numpy arrays read from the raw storage bytes.

Both layouts torch writes are read: the legacy one (torch < 1.6: magic number, protocol, system info, the
state-dict pickle, the storage keys, then each storage as an int64 element count and its bytes) and the zip
one (``archive/data.pkl`` plus one ``archive/data/<key>`` file per storage).
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class UnsafeWeights(Exception):
    """The file is not a plain state dict of tensors (it names a global we do not allow, or is malformed)."""


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = STORAGE_DTYPES[name]


class _Storage:
    """A storage's identity and dtype; its bytes are attached once read."""

    def __init__(self, key: str, dtype: np.dtype, numel: int) -> None:
        self.key, self.dtype, self.numel = key, dtype, numel
        self.array: np.ndarray | None = None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        data = self.storage.array
        if data is None:
            raise UnsafeWeights(f"storage {self.storage.key} was never written")
        if not self.size:
            return np.array(data[self.offset])
        itemsize = data.dtype.itemsize
        needed = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True)) + 1
        if self.offset < 0 or needed > data.size or any(s < 0 for s in self.stride):
            raise UnsafeWeights(f"a tensor reaches outside its storage {self.storage.key}")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=tuple(s * itemsize for s in self.stride), writeable=False
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *extra):
    if not isinstance(storage, _Storage):
        raise UnsafeWeights("a tensor whose storage is not a storage")
    return _Tensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_tensor":
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeWeights(f"refused global {module}.{name}: a weights file names only tensors and storages")

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafeWeights(f"unexpected persistent id {pid!r:.80}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise UnsafeWeights("a storage of an unknown type")
        if key not in self.storages:
            self.storages[key] = _Storage(key, storage_type.dtype, numel)
        return self.storages[key]


class _PlainUnpickler(pickle.Unpickler):
    """For the legacy header pickles: plain values only, no global at all."""

    def find_class(self, module: str, name: str) -> Any:
        raise UnsafeWeights(f"refused global {module}.{name} in a checkpoint header")


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The named arrays of a PyTorch state-dict checkpoint. Raises ``UnsafeWeights``."""
    data = Path(path).read_bytes()
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            return _load_zip(data)
        return _load_legacy(data)
    except UnsafeWeights:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, AttributeError, struct.error) as exc:
        raise UnsafeWeights(f"not a readable state dict: {exc}") from None


def _as_arrays(state: Any) -> dict[str, np.ndarray]:
    if not isinstance(state, dict):
        raise UnsafeWeights("the checkpoint is not a state dict")
    out: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not isinstance(value, _Tensor):
            raise UnsafeWeights(f"{name} is not a tensor")
        out[str(name)] = value.array()
    return out


def _load_legacy(data: bytes) -> dict[str, np.ndarray]:
    stream = io.BytesIO(data)
    if _PlainUnpickler(stream).load() != LEGACY_MAGIC:
        raise UnsafeWeights("not a PyTorch checkpoint (bad magic number)")
    if _PlainUnpickler(stream).load() != LEGACY_PROTOCOL:
        raise UnsafeWeights("unsupported checkpoint protocol")
    info = _PlainUnpickler(stream).load()
    if not isinstance(info, dict) or not info.get("little_endian", False):
        raise UnsafeWeights("only little-endian checkpoints are read")
    storages: dict[str, _Storage] = {}
    state = _Unpickler(stream, storages).load()
    keys = _PlainUnpickler(stream).load()
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise UnsafeWeights(f"storage {key} is not used by any tensor")
        (count,) = struct.unpack("<q", stream.read(8))
        if count != storage.numel:
            raise UnsafeWeights(f"storage {key}: {count} elements written, {storage.numel} expected")
        raw = stream.read(count * storage.dtype.itemsize)
        if len(raw) != count * storage.dtype.itemsize:
            raise UnsafeWeights(f"storage {key} is truncated")
        storage.array = np.frombuffer(raw, dtype=storage.dtype)
    return _as_arrays(state)


def _load_zip(data: bytes) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise UnsafeWeights("a zip checkpoint has exactly one data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        state = _Unpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
        for key, storage in storages.items():
            raw = archive.read(f"{prefix}data/{key}")
            if len(raw) != storage.numel * storage.dtype.itemsize:
                raise UnsafeWeights(f"storage {key} has {len(raw)} bytes, {storage.numel} elements expected")
            storage.array = np.frombuffer(raw, dtype=storage.dtype)
    return _as_arrays(state)
