"""The ``.npy`` files of a bundle: golden writes the header itself and reads back only headers of that exact form.

Reading never evaluates the header text (NumPy's reader runs a tokenizer on it, which raises
``tokenize.TokenError`` and other surprises on a flipped byte): a header is accepted only when it
is byte for byte the one :func:`npy_header` writes for the dtype and shape it states.
"""

from __future__ import annotations

import os
import re
import stat
import struct
from pathlib import Path

import numpy as np

from ..errors import BundleError

MAX_ELEMENTS = 1 << 40  # a bound on T * N that keeps every size computation far from overflow
_DTYPES = {"|i1": np.dtype(np.int8), "<i2": np.dtype("<i2"), "<i4": np.dtype("<i4"), "|b1": np.dtype(np.bool_)}
_HEADER = re.compile(rb"\{'descr': '(\|i1|<i2|<i4|\|b1)', 'fortran_order': False, "
                     rb"'shape': \((\d{1,15}), (\d{1,15})\), \} *\n")


def le(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    return dtype if dtype.itemsize == 1 else dtype.newbyteorder("<")


def npy_header(dtype, shape) -> bytes:
    """A NumPy format 1.0 header, byte-identical whatever NumPy writes today (64-byte aligned)."""
    shape = tuple(int(s) for s in shape)
    d = f"{{'descr': {le(dtype).str!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = -(10 + len(d) + 1) % 64
    d = d + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode("latin1")


def open_nofollow(path: Path):
    """A regular file opened for reading without following a symlink (BundleError otherwise)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise BundleError(f"{path.name}: cannot open ({e.strerror or e})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BundleError(f"{path.name}: not a regular file")
    return os.fdopen(fd, "rb")


def read_npy_header(path: Path):
    """(dtype, shape, data offset) of a golden .npy (2-D, C order); BundleError when the file is anything else."""
    path = Path(path)
    with open_nofollow(path) as f:
        head = f.read(10)
        size = os.fstat(f.fileno()).st_size
        if len(head) < 10 or head[:8] != b"\x93NUMPY\x01\x00":
            raise BundleError(f"{path.name}: not a valid .npy file (bad magic or version; golden writes format 1.0)")
        (hlen,) = struct.unpack("<H", head[8:10])
        text = f.read(hlen)
    m = _HEADER.fullmatch(text)
    if m is None or (10 + hlen) % 64:
        raise BundleError(f"{path.name}: not a valid .npy file "
                          "(corrupt header: not the 2-D C-order header golden writes)")
    dtype, shape = _DTYPES[m.group(1).decode()], (int(m.group(2)), int(m.group(3)))
    if npy_header(dtype, shape) != head + text:
        raise BundleError(f"{path.name}: not a valid .npy file (corrupt header: not in golden's canonical form)")
    if shape[0] * shape[1] > MAX_ELEMENTS:
        raise BundleError(f"{path.name}: shape {shape} is beyond any bundle golden writes")
    expected = 10 + hlen + shape[0] * shape[1] * dtype.itemsize
    if size != expected:
        raise BundleError(f"{path.name}: truncated or corrupt ({size} bytes, header promises {expected})")
    return dtype, shape, 10 + hlen


def open_npy(path: Path, dtype, shape):
    """A read-only memmap of a golden .npy whose header must state exactly ``dtype`` and ``shape``."""
    got_dtype, got_shape, offset = read_npy_header(path)
    if got_dtype != le(dtype):
        raise BundleError(f"{path.name}: wrong dtype: holds {got_dtype}, manifest says {np.dtype(dtype)}")
    if got_shape != tuple(shape):
        raise BundleError(f"{path.name}: wrong shape: holds {got_shape}, manifest says {tuple(shape)}")
    with open_nofollow(path) as f:
        return np.memmap(f, dtype=got_dtype, mode="r", offset=offset, shape=got_shape)


class NpyWriter:
    def __init__(self, path: Path, dtype, shape):
        self.dtype = le(dtype)
        self.f = open(path, "xb")  # closed by close(): one writer per array over a whole stream
        self.f.write(npy_header(self.dtype, shape))

    def write(self, a: np.ndarray) -> None:
        self.f.write(np.ascontiguousarray(a, dtype=self.dtype).tobytes())

    def close(self) -> None:
        self.f.close()
