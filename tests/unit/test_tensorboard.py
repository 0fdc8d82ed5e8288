"""TensorBoardWriter: event files read back by TensorBoard's own reader, and the crc32c."""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from daedalus.tracking.tensorboard import TensorBoardWriter, crc32c, masked_crc32c


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in ``logdir`` as ``{tag: [(step, value), ...]}``, via TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def read_records(path: Path) -> list[bytes]:
    """Parse the TFRecord framing by hand, checking both CRCs of every record."""
    data = path.read_bytes()
    records, offset = [], 0
    while offset < len(data):
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[offset + 8 : offset + 12])
        assert length_crc == masked_crc32c(header)
        payload = data[offset + 12 : offset + 12 + length]
        (payload_crc,) = struct.unpack("<I", data[offset + 12 + length : offset + 16 + length])
        assert payload_crc == masked_crc32c(payload)
        records.append(payload)
        offset += 16 + length
    assert offset == len(data)
    return records


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0x00000000),
        (b"123456789", 0xE3069283),
        (b"a", 0xC1D04330),
        # RFC 3720 (iSCSI) appendix B.4 vectors.
        (bytes(32), 0x8A9136AA),
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
    ],
)
def test_crc32c_known_vectors(data: bytes, expected: int) -> None:
    assert crc32c(data) == expected


def test_crc32c_is_incremental_and_matches_tensorboard() -> None:
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow

    rng = random.Random(0)
    for size in (1, 7, 100, 1000):
        data = bytes(rng.randrange(256) for _ in range(size))
        assert crc32c(data[size // 3 :], crc32c(data[: size // 3])) == crc32c(data)
        assert masked_crc32c(data) == pywrap_tensorflow.masked_crc32c(data)


def test_scalars_read_back_exactly(tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    writer = TensorBoardWriter(logdir)
    writer.log(0, {"train/return": 1.5, "loss": -0.25})
    writer.log(10, {"train/return": 2.0})
    writer.log(20, {"train/return": 0.1, "loss": np.float64(3.0), "lr": 3e-4, "episodes": 7})
    writer.close()

    scalars = read_scalars(logdir)
    assert set(scalars) == {"train/return", "loss", "lr", "episodes"}
    # Values are stored as float32, as TensorBoard does.
    assert scalars["train/return"] == [
        (0, 1.5),
        (10, 2.0),
        (20, pytest.approx(float(np.float32(0.1)))),
    ]
    assert scalars["train/return"][2][1] == float(np.float32(0.1))
    assert scalars["loss"] == [(0, -0.25), (20, 3.0)]
    assert scalars["lr"] == [(20, float(np.float32(3e-4)))]
    assert scalars["episodes"] == [(20, 7.0)]


def test_file_name_and_first_event(tmp_path: Path) -> None:
    writer = TensorBoardWriter(tmp_path)
    writer.close()
    files = os.listdir(tmp_path)
    assert len(files) == 1
    assert files[0].startswith("events.out.tfevents.")
    assert writer.path == tmp_path / files[0]
    records = read_records(writer.path)
    assert len(records) == 1
    assert b"brain.Event:2" in records[0]

    from tensorboard.compat.proto.event_pb2 import Event

    event = Event.FromString(records[0])
    assert event.file_version == "brain.Event:2"
    assert event.step == 0
    assert event.wall_time > 1.6e9


def test_events_parse_as_protobuf(tmp_path: Path) -> None:
    from tensorboard.compat.proto.event_pb2 import Event

    with TensorBoardWriter(tmp_path) as writer:
        writer.log(-3, {"a": 1.0, "ü/b": 2.0})
        writer.log(2**40, {"a": float("inf"), "big": 1e300})
    events = [Event.FromString(record) for record in read_records(writer.path)]
    assert [e.step for e in events] == [0, -3, 2**40]
    assert [(v.tag, v.simple_value) for v in events[1].summary.value] == [("a", 1.0), ("ü/b", 2.0)]
    assert [(v.tag, v.simple_value) for v in events[2].summary.value] == [
        ("a", float("inf")),
        ("big", float("inf")),
    ]


def test_nan_is_kept(tmp_path: Path) -> None:
    with TensorBoardWriter(tmp_path) as writer:
        writer.log(5, {"x": float("nan")})
    ((step, value),) = read_scalars(tmp_path)["x"]
    assert step == 5 and np.isnan(value)


def test_writes_are_buffered_until_flush(tmp_path: Path) -> None:
    writer = TensorBoardWriter(tmp_path, flush_secs=3600)
    size_after_open = writer.path.stat().st_size
    assert len(read_records(writer.path)) == 1  # the version event is on disk at once
    for step in range(100):
        writer.log(step, {"x": float(step)})
    assert writer.path.stat().st_size == size_after_open
    writer.flush()
    assert len(read_records(writer.path)) == 101
    writer.log(100, {"x": 100.0})
    assert len(read_records(writer.path)) == 101
    writer.close()
    assert read_scalars(tmp_path)["x"] == [(step, float(step)) for step in range(101)]


def test_flush_secs_zero_writes_every_event(tmp_path: Path) -> None:
    writer = TensorBoardWriter(tmp_path, flush_secs=0)
    writer.log(1, {"x": 1.0})
    assert len(read_records(writer.path)) == 2
    writer.close()


def test_large_buffer_is_written_early(tmp_path: Path) -> None:
    writer = TensorBoardWriter(tmp_path, flush_secs=3600, max_buffer_bytes=200)
    for step in range(20):
        writer.log(step, {"some/metric": float(step)})
    assert len(read_records(writer.path)) > 1
    writer.close()


def test_close_is_idempotent_and_log_after_close_raises(tmp_path: Path) -> None:
    writer = TensorBoardWriter(tmp_path)
    writer.log(1, {"x": 1.0})
    writer.close()
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.log(2, {"x": 2.0})
    assert read_scalars(tmp_path)["x"] == [(1, 1.0)]


def test_non_numeric_values_are_skipped_with_one_warning(tmp_path: Path) -> None:
    with TensorBoardWriter(tmp_path) as writer:
        with pytest.warns(UserWarning, match="'name'"):
            writer.log(1, {"x": 1.0, "name": "cartpole"})
        writer.log(2, {"name": "again"})  # no second warning, no event
    assert read_scalars(tmp_path) == {"x": [(1, 1.0)]}
    assert len(read_records(writer.path)) == 2


def test_two_writers_in_one_folder_get_distinct_files(tmp_path: Path) -> None:
    with TensorBoardWriter(tmp_path) as first, TensorBoardWriter(tmp_path) as second:
        first.log(1, {"a": 1.0})
        second.log(2, {"b": 2.0})
    assert first.path != second.path
    assert read_scalars(tmp_path) == {"a": [(1, 1.0)], "b": [(2, 2.0)]}


def test_thousands_of_scalars_are_fast(tmp_path: Path) -> None:
    import time

    start = time.perf_counter()
    with TensorBoardWriter(tmp_path) as writer:
        for step in range(1000):
            writer.log(step, {"train/episode_return": step * 0.5, "loss/policy": -step / 7.0})
    assert time.perf_counter() - start < 5.0
    scalars = read_scalars(tmp_path)
    assert len(scalars["train/episode_return"]) == 1000
    assert scalars["train/episode_return"][-1] == (999, 499.5)


def test_satisfies_metric_sink_protocol(tmp_path: Path) -> None:
    from daedalus.types import MetricSink

    sink: MetricSink = TensorBoardWriter(tmp_path)
    sink.log(0, {"x": 0.0})
    sink.close()
