"""A dependency-free TensorBoard scalar writer.

TensorBoard reads ``events.out.tfevents.*`` files: a sequence of TFRecords, each holding one
serialized ``tensorflow.Event`` protobuf. Scalars need only a handful of protobuf fields, so
they are encoded by hand here instead of pulling in TensorFlow, ``tensorboard`` or ``protobuf``
at training time (``tensorboard`` itself is only needed to *view* the files).

Record framing (TFRecord)::

    uint64 length (little endian)
    uint32 masked_crc32c(length bytes)
    bytes  data[length]
    uint32 masked_crc32c(data)

Event encoding (the subset of ``tensorflow/core/util/event.proto`` used here)::

    Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
              SessionLog session_log = 7; }
    Summary { repeated Value value = 1; }
    SessionLog { SessionStatus status = 1; }  (START = 1: a resumed run's purge marker)
    Value   { string tag = 1; float simple_value = 2; }
"""

from __future__ import annotations

import math
import os
import socket
import struct
import threading
import time
import warnings
from itertools import count
from pathlib import Path
from types import TracebackType

__all__ = ["TensorBoardWriter", "crc32c", "masked_crc32c"]

# --------------------------------------------------------------------------- crc32c

_CRC32C_POLY_REVERSED = 0x82F63B78  # Castagnoli polynomial 0x1EDC6F41, bit-reversed


def _make_crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC32C_POLY_REVERSED if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _make_crc32c_table()
_MASK_DELTA = 0xA282EAD8


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``, continuing from ``crc`` (0 for a fresh checksum).

    A byte-at-a-time table lookup: roughly 10 MB/s in CPython, plenty for scalar
    events (a few dozen bytes each) and keeps the writer free of compiled dependencies.
    """
    table = _CRC32C_TABLE
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC that TFRecord stores (rotated and offset so CRCs of CRCs stay strong)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _record(data: bytes) -> bytes:
    """Frame ``data`` as one TFRecord."""
    header = struct.pack("<Q", len(data))
    return (
        header
        + struct.pack("<I", masked_crc32c(header))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


# --------------------------------------------------------------------------- protobuf

# Field keys are (field_number << 3) | wire_type: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
_EVENT_WALL_TIME = b"\x09"  # 1, fixed64 (double)
_EVENT_STEP = b"\x10"  # 2, varint (int64)
_EVENT_FILE_VERSION = b"\x1a"  # 3, length-delimited
_EVENT_SUMMARY = b"\x2a"  # 5, length-delimited
_EVENT_SESSION_LOG = b"\x3a"  # 7, length-delimited (SessionLog)
_SESSION_LOG_STATUS = b"\x08"  # SessionLog.status = 1, varint (enum)
_SESSION_LOG_START = 1  # SessionLog.SessionStatus.START
_SUMMARY_VALUE = b"\x0a"  # Summary.value = 1, length-delimited
_VALUE_TAG = b"\x0a"  # Summary.Value.tag = 1, length-delimited
_VALUE_SIMPLE_VALUE = b"\x15"  # Summary.Value.simple_value = 2, fixed32 (float)

_FLOAT32_MAX = 3.4028234663852886e38


def _varint(value: int) -> bytes:
    # int64 fields encode negative numbers as their 64-bit two's complement (10 bytes).
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(key: bytes, payload: bytes) -> bytes:
    return key + _varint(len(payload)) + payload


def _float32(value: float) -> bytes:
    # struct refuses finite doubles beyond float32 range; TensorBoard would show them as inf anyway.
    if math.isfinite(value) and abs(value) > _FLOAT32_MAX:
        value = math.copysign(math.inf, value)
    return struct.pack("<f", value)


def _event(wall_time: float, step: int, body: bytes) -> bytes:
    """Serialize an ``Event`` whose remaining fields are already encoded in ``body``."""
    return _EVENT_WALL_TIME + struct.pack("<d", wall_time) + _EVENT_STEP + _varint(step) + body


def _scalar_summary(scalars: list[tuple[str, float]]) -> bytes:
    summary = b"".join(
        _length_delimited(
            _SUMMARY_VALUE,
            _length_delimited(_VALUE_TAG, tag.encode("utf-8"))
            + _VALUE_SIMPLE_VALUE
            + _float32(value),
        )
        for tag, value in scalars
    )
    return _length_delimited(_EVENT_SUMMARY, summary)


# --------------------------------------------------------------------------- writer

# Distinguishes writers created by one process within the same second in the same folder.
_writer_ids = count()


class TensorBoardWriter:
    """Writes scalar metrics as a TensorBoard event file; a :class:`~daedalus.types.MetricSink`.

    Each :meth:`log` call becomes one event holding every metric as a ``simple_value``
    (stored as float32, as TensorBoard does). Records are buffered in memory and written
    to disk when a :meth:`log` call comes at least ``flush_secs`` after the last write,
    when the buffer exceeds ``max_buffer_bytes``, on :meth:`flush` and on :meth:`close`.
    There is no background thread, so nothing is written between two ``log`` calls.

    Args:
        logdir: Folder for the event file; created if missing.
        flush_secs: Longest time records wait in memory once a new ``log`` call arrives.
            ``0`` writes every event immediately.
        max_buffer_bytes: Write early when this many bytes are pending.

    Example:
        >>> with TensorBoardWriter("runs/x/tb") as tb:  # doctest: +SKIP
        ...     tb.log(1000, {"train/return": 21.5, "loss/value": 0.3})
    """

    def __init__(
        self,
        logdir: str | os.PathLike[str],
        flush_secs: float = 5.0,
        max_buffer_bytes: int = 1 << 20,
    ) -> None:
        if flush_secs < 0:
            raise ValueError(f"flush_secs must be >= 0, got {flush_secs}")
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.flush_secs = float(flush_secs)
        self.max_buffer_bytes = int(max_buffer_bytes)
        now = time.time()
        # TensorBoard only reads files whose name contains "tfevents"; the pid and counter
        # keep two writers in one folder (a resumed run, parallel jobs) from clobbering each other.
        name = f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}.{os.getpid()}"
        self.path = self.logdir / f"{name}.{next(_writer_ids)}"
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open for the writer's lifetime
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._warned_tags: set[str] = set()
        self._closed = False
        # The version event goes to disk at once so that TensorBoard sees a valid file
        # even if the process dies before the first flush.
        self._buffer += _record(
            _event(now, 0, _length_delimited(_EVENT_FILE_VERSION, b"brain.Event:2"))
        )
        self._write_buffer()
        self._last_write = time.monotonic()

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record ``metrics`` at ``step`` as one event.

        Values that ``float()`` cannot convert (strings, ``None``) are skipped with one
        warning per tag rather than raised, so that a stray metric never stops training.
        """
        scalars = []
        for tag, value in metrics.items():
            try:
                scalars.append((str(tag), float(value)))
            except (TypeError, ValueError):
                if tag not in self._warned_tags:
                    self._warned_tags.add(tag)
                    warnings.warn(
                        f"TensorBoardWriter: skipping metric {tag!r} with non-numeric value "
                        f"{value!r}",
                        stacklevel=2,
                    )
        if not scalars:
            return
        record = _record(_event(time.time(), int(step), _scalar_summary(scalars)))
        with self._lock:
            self._check_open()
            self._buffer += record
            now = time.monotonic()
            if (
                now - self._last_write >= self.flush_secs
                or len(self._buffer) >= self.max_buffer_bytes
            ):
                self._write_buffer()
                self._last_write = now

    def purge_after(self, step: int) -> None:
        """Tell TensorBoard to drop what earlier files of this folder logged after ``step``.

        A resumed run continues from its checkpoint at ``step``; the interrupted process may
        have logged beyond it. A ``SessionLog(START)`` event at ``step + 1`` makes TensorBoard
        discard earlier events with ``step >= step + 1`` (what ``SummaryWriter(purge_step=...)``
        writes), so the curve has no duplicated steps.
        """
        session_log = _SESSION_LOG_STATUS + _varint(_SESSION_LOG_START)
        record = _record(_event(time.time(), int(step) + 1, _length_delimited(_EVENT_SESSION_LOG, session_log)))
        with self._lock:
            self._check_open()
            self._buffer += record
            self._write_buffer()

    def flush(self) -> None:
        """Write every pending record to disk."""
        with self._lock:
            self._check_open()
            self._write_buffer()
            self._last_write = time.monotonic()

    def close(self) -> None:
        """Flush and close the file; calling it again does nothing."""
        with self._lock:
            if self._closed:
                return
            try:
                self._write_buffer()
            finally:
                self._closed = True
                self._file.close()

    def __enter__(self) -> TensorBoardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"TensorBoardWriter for {self.path} is closed")

    def _write_buffer(self) -> None:
        if self._buffer:
            self._file.write(self._buffer)
            self._buffer.clear()
        self._file.flush()
