"""Bulk data as a real terminal frames it (the answer to CMD_READ_BUFFER 1504).

What a device sends, from the real-device captures in pyzk master 5063798 ``test.py``
(``test_tcp_get_users_broken_tcp`` l.269-330 and ``_test_tcp_get_template_1``; issue 14):

* ``CMD_PREPARE_DATA`` alone: ``u32 size, u32 1008`` — the second word is the chunk size
  (``5050827d10000000 dc05 .... 5c3c 1600 | b4130000 f0030000``);
* then the data in 1 008-byte ``CMD_DATA`` frames (TCP length 0x3f8), the last one shorter,
  whose *session* field counts up from 0 while the reply field echoes the request
  (``dd05 d058 0000 1600``, ``dd05 20b6 0100 1600``, … ``dd05 07fa 0500 1600``);
* then ``CMD_ACK_OK`` carrying the last counter in its session field (``d007 fcf7 0100 3200``
  after counters 0 and 1);

each frame its own write. Over UDP (pyzk ``__recieve_chunk``): PREPARE_DATA, ≤ 1 024-byte
DATA datagrams, ACK_OK.

The ``segment`` fault instead cuts the concatenated TCP stream at chosen offsets (real TCP
may split or merge segments anywhere); ``drop_mid_download`` closes part-way through.
``frame_gap_s`` paces the frames like a terminal's slow CPU and link (some clients, e.g.
node-zklib, take one frame per socket read and lose frames that arrive merged).
"""

from __future__ import annotations

import struct
import threading

import structlog

from drivers.zk_terminal import codec as c
from drivers.zk_terminal.sim.server import Session

log = structlog.get_logger(__name__)
#: The data bytes per CMD_DATA frame a device sends (PREPARE_DATA's second word, 0x3f0).
DEVICE_CHUNK = 1008
UDP_DATA_MAX = 1024


def tcp_frames(session: int, reply: int, data: bytes) -> list[bytes]:
    """The frames of one bulk answer over TCP, in order (see the module docstring)."""
    frames = [
        c.encode_tcp(
            c.CMD_PREPARE_DATA, session, reply, struct.pack("<II", len(data), DEVICE_CHUNK)
        )
    ]
    counter = 0
    for counter, off in enumerate(range(0, len(data), DEVICE_CHUNK)):
        frames.append(c.encode_tcp(c.CMD_DATA, counter, reply, data[off : off + DEVICE_CHUNK]))
    frames.append(c.encode_tcp(c.CMD_ACK_OK, counter if data else session, reply))
    return frames


def single_frames(session: int, reply: int, data: bytes) -> list[bytes]:
    """The simulator's framing before issue 14 (one DATA frame, one write): kinder than a
    terminal, kept for benchmarks of the gateway side only."""
    return [
        c.encode_tcp(c.CMD_PREPARE_DATA, session, reply, struct.pack("<II", len(data), 0))
        + c.encode_tcp(c.CMD_DATA, session, reply, data)
        + c.encode_tcp(c.CMD_ACK_OK, session, reply)
    ]


def send_chunk(
    s: Session, reply: int, data: bytes, frame_gap_s: float = 0.0, framing: str = "device"
) -> None:
    """Answer CMD_READ_BUFFER with ``data`` (one slice of the prepared buffer)."""
    faults = s.server.dev.faults
    drop = faults.take_drop(len(data))
    if not s.tcp:
        _send_udp(s, reply, data, drop)
        return
    frames = (single_frames if framing == "single" else tcp_frames)(s.id, reply, data)
    stream = b"".join(frames)
    if drop is not None:
        # PREPARE_DATA (24 bytes), then 16 header bytes per DATA frame begun, then ``drop``
        # data bytes: the connection dies in the middle of the data.
        per = DEVICE_CHUNK if framing != "single" else max(len(data), 1)
        cut = 24 + 16 * (drop // per + 1) + drop
        s.send_raw(stream[:cut])
        log.info("zk_sim_fault_drop", sent=drop)
        s.close()
        return
    seg = faults.take_segment(len(stream))
    if seg is not None:
        cuts, pause = seg
        start = 0
        for end in [*cuts, len(stream)]:
            s.send_raw(stream[start:end])
            start = end
            if end < len(stream) and pause > 0:
                threading.Event().wait(pause)
        return
    for frame in frames:
        if frame_gap_s > 0:  # before each frame: also apart from the previous answer's ACK
            threading.Event().wait(frame_gap_s)
        s.send_raw(frame)


def _send_udp(s: Session, reply: int, data: bytes, drop: int | None) -> None:
    s.write(c.CMD_PREPARE_DATA, reply, struct.pack("<II", len(data), UDP_DATA_MAX))
    sent = 0
    for off in range(0, len(data), UDP_DATA_MAX):
        if drop is not None and sent >= drop:
            log.info("zk_sim_fault_drop", sent=sent)
            s.close()
            return
        s.write(c.CMD_DATA, reply, data[off : off + UDP_DATA_MAX])
        sent += UDP_DATA_MAX
    s.write(c.CMD_ACK_OK, reply)
