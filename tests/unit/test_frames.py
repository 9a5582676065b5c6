"""Frames on a pipe: every complete frame is read at once, a partial one waits for its rest."""

from __future__ import annotations

import os
import threading

import pytest

from celeriac.worker.frames import HEADER, FrameReader, write_frame


def test_frames_come_out_whole_and_in_order() -> None:
    reader_fd, writer_fd = os.pipe()
    reader = FrameReader(reader_fd)
    try:
        assert reader.read() == []  # nothing yet, and it does not block
        write_frame(writer_fd, b"one")
        write_frame(writer_fd, b"")
        big = b"x" * 200_000  # more than a pipe holds: written while the reader reads
        writer = threading.Thread(target=write_frame, args=(writer_fd, big))
        writer.start()
        frames: list[bytes] = []
        while len(frames) < 3:
            frames += reader.read()
        writer.join()
        assert frames == [b"one", b"", big]
    finally:
        reader.close()
        os.close(writer_fd)


def test_a_frame_cut_short_is_never_handed_out() -> None:
    reader_fd, writer_fd = os.pipe()
    reader = FrameReader(reader_fd)
    try:
        os.write(writer_fd, HEADER.pack(10) + b"12345")
        assert reader.read() == []
        os.write(writer_fd, b"67890" + HEADER.pack(1))
        assert reader.read() == [b"1234567890"]
        os.write(writer_fd, b"!")
        assert reader.read() == [b"!"]
    finally:
        reader.close()
        os.close(writer_fd)


def test_a_plain_outcome_comes_back_equal_to_the_one_sent() -> None:
    from celeriac.execution import Outcome
    from celeriac.worker.pool import outcome_from_wire, outcome_wire

    sent = Outcome("SUCCESS", b"[1, 2]", "application/json", 0.25)
    wire = outcome_wire(sent)
    assert isinstance(wire, tuple)  # the compact form
    back = outcome_from_wire(wire)
    assert back == sent and hash(back) == hash(sent)
    with pytest.raises(AttributeError):
        back.state = "FAILURE"  # type: ignore[misc]  # still frozen
