"""Damaged pre-1.6 (non-zip) torch files: no memory amplification, every failure a ModelFileError.

The files are written here opcode by opcode (pickle protocol 2), as the legacy torch format lays
them out: magic number, protocol, system info, the pickled object, the storage keys, then each
storage's element count and raw bytes.
"""

from __future__ import annotations

import pickle
import resource
import struct
import time
from pathlib import Path

import pytest
import torch

from ml.errors import ModelFileError
from ml.models import importing
from ml.models.legacy_pickle import legacy_restricted_load

MAGIC = 0x1950A86A20F9469CFC6C
INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}


def _p(value: object) -> bytes:
    """The opcodes of a plain value (no PROTO header, no STOP)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def _tuple(*parts: bytes) -> bytes:
    return b"(" + b"".join(parts) + b"t"


def _tensor(numel: int, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> bytes:
    storage = _tuple(_p("storage"), b"ctorch\nFloatStorage\n", _p("0"), _p("cpu"), _p(numel), b"N") + b"Q"
    args = _tuple(storage, _p(offset), _p(size), _p(stride), b"\x89", b"ccollections\nOrderedDict\n)R")
    return b"ctorch._utils\n_rebuild_tensor_v2\n" + args + b"R"


def _module(tensor: bytes) -> bytes:
    """A pickled torch.nn.Linear whose one parameter is ``tensor`` (what torch.save(model) writes)."""
    cls = _tuple(_p("module"), b"ctorch.nn.modules.linear\nLinear\n", _p("linear.py"), _p("")) + b"Q"
    obj = cls + b")\x81"
    state = b"}" + _p("_parameters") + b"}" + _p("weight") + tensor + b"ss" + _p("_modules") + b"}s"
    return obj + state + b"b"


def _legacy(result: bytes, keys: tuple[str, ...], data: bytes) -> bytes:
    head = b"".join(pickle.dumps(v, protocol=2) for v in (MAGIC, 1001, INFO))
    return head + b"\x80\x02" + result + b"." + pickle.dumps(keys, protocol=2) + data


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _storage(values: list[float]) -> bytes:
    return struct.pack("<q", len(values)) + struct.pack(f"<{len(values)}f", *values)


def _refused(path: Path) -> None:
    with pytest.raises(ModelFileError):
        importing.extract_state_dict(importing.safe_torch_load(path))
    with pytest.raises(ModelFileError):
        importing.extract_state_dict(legacy_restricted_load(path))


def test_the_crafted_format_is_real_a_sound_file_loads(tmp_path: Path) -> None:
    good = _write(
        tmp_path, "good.pt", _legacy(_module(_tensor(4, 0, (2, 2), (2, 1))), ("0",), _storage([1, 2, 3, 4]))
    )
    stub = legacy_restricted_load(good)
    state = importing.extract_state_dict(stub)
    assert torch.equal(state["weight"], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert torch.equal(
        importing.extract_state_dict(importing.safe_torch_load(good))["weight"], state["weight"]
    )


def test_a_small_file_claiming_2_gb_is_refused_without_allocating_it(tmp_path: Path) -> None:
    content = _legacy(_module(_tensor(2**29, 0, (4,), (1,))), ("0",), struct.pack("<q", 2**29) + b"\0" * 16)
    path = _write(tmp_path, "huge.pt", content)
    assert path.stat().st_size < 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    for load in (importing.safe_torch_load, legacy_restricted_load):
        with pytest.raises(ModelFileError, match="declares"):
            load(path)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 256, f"peak memory grew by {grown_mib:.0f} MiB for a {path.stat().st_size}-byte file"
    assert time.monotonic() - start < 5


def test_a_plain_state_dict_claiming_2_gb_is_refused_too(tmp_path: Path) -> None:
    result = b"}" + _p("weight") + _tensor(2**29, 0, (4,), (1,)) + b"s"
    path = _write(tmp_path, "huge_dict.pt", _legacy(result, ("0",), struct.pack("<q", 2**29)))
    with pytest.raises(ModelFileError):
        importing.safe_torch_load(path)


@pytest.mark.parametrize(
    ("offset", "size", "stride"),
    [(0, (10,), (1,)), (3, (2, 2), (2, 1)), (0, (2, 2), (100, 1)), (0, (10**12,), (0,)), (0, (2,), (1, 1))],
)
def test_tensor_views_outside_their_storage_are_refused(
    tmp_path: Path, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
) -> None:
    content = _legacy(_module(_tensor(4, offset, size, stride)), ("0",), _storage([1, 2, 3, 4]))
    _refused(_write(tmp_path, "strides.pt", content))


def test_a_negative_or_non_integer_size_is_refused(tmp_path: Path) -> None:
    for i, numel in enumerate((-1, 2**70)):
        _refused(_write(tmp_path, f"n{i}.pt", _legacy(_module(_tensor(numel, 0, (1,), (1,))), ("0",), b"")))
    bad = _module(_tensor(4, 0, (2, 2), (2, 1))).replace(_p((2, 2)), _p(("2", 2)))
    _refused(_write(tmp_path, "str.pt", _legacy(bad, ("0",), _storage([1, 2, 3, 4]))))


def test_a_self_referencing_list_and_a_deep_list_are_readable_errors(tmp_path: Path) -> None:
    selfref = b"]q\x00h\x00a"  # l = []; l.append(l)
    deep = b"]" * 50_000 + b"a" * 49_999
    for i, result in enumerate((selfref, deep)):
        _refused(_write(tmp_path, f"list{i}.pt", _legacy(result, (), b"")))


def test_a_storage_key_that_was_never_declared_and_truncated_data(tmp_path: Path) -> None:
    tensor = _module(_tensor(4, 0, (4,), (1,)))
    _refused(_write(tmp_path, "key.pt", _legacy(tensor, ("1",), _storage([1, 2, 3, 4]))))
    _refused(_write(tmp_path, "trunc.pt", _legacy(tensor, ("0",), _storage([1, 2, 3, 4])[:-3])))
    _refused(_write(tmp_path, "count.pt", _legacy(tensor, ("0",), struct.pack("<q", 2**40) + b"\0" * 16)))
