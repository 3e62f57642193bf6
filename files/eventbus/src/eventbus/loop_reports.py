"""Delivery reports served on the event loop's own thread, woken by librdkafka itself.

A poller thread blocked in ``poll()`` must take the GIL from the loop before it can hand a
report over, and a busy loop rarely lets it: every ``select``/``epoll`` call the loop makes
drops the GIL for an instant and takes it straight back, so the waiting thread's request is
reset again and again (CPython's convoy effect). Measured with benchmarks/report_wakeup.py, a
thread's report waited 0.96 s for the GIL behind a loop running 1 ms slices; in the service,
the p99 of a single event's answer under load was 78-107 ms against a median of 4.4 ms.

librdkafka can instead write to a file descriptor when its queue of reports goes from empty
to non-empty (``rd_kafka_queue_io_event_enable``, one write per burst): the loop watches the
pipe and serves the reports with ``poll(0)`` on its own thread, with no thread, no GIL
hand-over and no CPU while idle. confluent-kafka does not expose that call (a pull request
adding it for the consumer, confluentinc/confluent-kafka-python#1448, has stayed open since
2022), so ``LoopReports`` calls librdkafka's C API with ctypes, on the ``rd_kafka_t`` that
confluent-kafka keeps right after the object header of its ``Handle`` struct (the layout of
every release since 0.9). It trusts that pointer only when every check passes, each unable to
crash the process on a wrong layout:

1. the producer is confluent-kafka's own ``Producer`` type, large enough to hold a pointer
   after the object header, and exactly one librdkafka is loaded (the one called is the one
   confluent-kafka uses);
2. the 64 KiB the pointer points at are readable: they are written to a pipe, which fails
   with EFAULT instead of faulting (a raw read of an address that is not mapped would kill
   the worker);
3. those bytes hold the producer object's address: confluent-kafka gives librdkafka its
   ``Handle`` as the handle's opaque, kept inside ``rd_kafka_t``;
4. librdkafka confirms it: ``rd_kafka_opaque`` is the producer object, ``rd_kafka_type`` a
   producer, ``rd_kafka_name`` starts with the configured ``client.id``.

When a check fails, the service serves the reports from a poller thread, as before, and says
so once in its log (tests/service/test_loop_reports.py runs the checks on wrong offsets and
fails if any passes). A tick every second serves the queue too, so a wake-up that never came
(a report callback that raised, which makes confluent-kafka stop serving early) costs a
second, not a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import struct
from pathlib import Path
from typing import Any

import confluent_kafka

log = logging.getLogger(__name__)

RD_KAFKA_PRODUCER = 0
# how much of the rd_kafka_t is proven readable before librdkafka reads it (its rk_conf,
# which holds the opaque, lies within the first few KiB); a pipe holds this much
PROBED_BYTES = 65_536
# the loop serves the queue this often even without a wake-up
TICK_SECONDS = 1.0
_POINTER = struct.Struct("@P")


class LayoutError(Exception):
    """confluent-kafka's producer is not laid out as checked: use the poller thread."""


def _loaded_librdkafka() -> str:
    """The path of the one librdkafka this process has loaded (confluent-kafka's)."""
    paths = set()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and "librdkafka" in Path(fields[5]).name:
            paths.add(fields[5])
    if len(paths) != 1:
        raise LayoutError(f"expected one librdkafka loaded, found {sorted(paths) or 'none'}")
    return paths.pop()


class Librdkafka:
    """The few librdkafka calls the route needs, from the library confluent-kafka loaded."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(_loaded_librdkafka())  # the same mapping: dlopen counts it once more
        pointer = ctypes.c_void_p
        lib.rd_kafka_name.restype = ctypes.c_char_p
        lib.rd_kafka_name.argtypes = [pointer]
        lib.rd_kafka_type.restype = ctypes.c_int
        lib.rd_kafka_type.argtypes = [pointer]
        lib.rd_kafka_opaque.restype = pointer
        lib.rd_kafka_opaque.argtypes = [pointer]
        lib.rd_kafka_queue_get_main.restype = pointer
        lib.rd_kafka_queue_get_main.argtypes = [pointer]
        lib.rd_kafka_queue_io_event_enable.restype = None
        lib.rd_kafka_queue_io_event_enable.argtypes = [
            pointer,
            ctypes.c_int,
            pointer,
            ctypes.c_size_t,
        ]
        lib.rd_kafka_queue_destroy.restype = None
        lib.rd_kafka_queue_destroy.argtypes = [pointer]
        self.lib = lib
        libc = ctypes.CDLL(None, use_errno=True)
        libc.write.restype = ctypes.c_ssize_t
        libc.write.argtypes = [ctypes.c_int, pointer, ctypes.c_size_t]
        self._write = libc.write


def readable_bytes(write: Any, address: int, size: int) -> bytes | None:
    """The ``size`` bytes at ``address``, or None when any of them is not mapped: the kernel
    copies them into a pipe and answers EFAULT where a plain read would fault."""
    read_end, write_end = os.pipe()
    try:
        os.set_blocking(write_end, False)
        written = write(write_end, address, size)
        if written != size:
            return None
        chunks, left = [], size
        while left:
            chunk = os.read(read_end, left)
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(read_end)
        os.close(write_end)


def producer_handle(
    library: Librdkafka, producer: Any, client_id: str, offset: int | None = None
) -> int:
    """The producer's ``rd_kafka_t`` pointer, read at ``offset`` bytes into the object (the
    object header's size unless a test says otherwise), once every check of the module's
    docstring passes; LayoutError saying which did not."""
    # the exact type: a subclass is not the layout this module checked
    if type(producer) is not confluent_kafka.Producer:  # pylint: disable=unidiomatic-typecheck
        raise LayoutError(f"not confluent-kafka's own Producer: {type(producer)!r}")
    offset = object.__basicsize__ if offset is None else offset
    if offset < 0 or offset + _POINTER.size > type(producer).__basicsize__:
        raise LayoutError(f"offset {offset} is outside the producer object")
    (pointer,) = _POINTER.unpack(ctypes.string_at(id(producer) + offset, _POINTER.size))
    if not pointer:
        raise LayoutError(f"no pointer at offset {offset}, where the rd_kafka_t should be")
    return confirmed(library, producer, pointer, client_id)


def confirmed(library: Librdkafka, producer: Any, pointer: int, client_id: str) -> int:
    """``pointer`` once checks 2-4 of the module's docstring say it is ``producer``'s
    ``rd_kafka_t``; LayoutError otherwise."""
    memory = readable_bytes(library._write, pointer, PROBED_BYTES)
    if memory is None:
        raise LayoutError(f"the pointer {pointer:#x} does not lead to readable memory")
    if _POINTER.pack(id(producer)) not in memory:
        raise LayoutError(f"the memory at {pointer:#x} does not name the producer")
    lib = library.lib
    if lib.rd_kafka_opaque(pointer) != id(producer):
        raise LayoutError("librdkafka's opaque for the handle is not the producer")
    if lib.rd_kafka_type(pointer) != RD_KAFKA_PRODUCER:
        raise LayoutError("librdkafka says the handle is not a producer")
    name = (lib.rd_kafka_name(pointer) or b"").decode(errors="replace")
    if not name.startswith(f"{client_id}#producer-"):
        raise LayoutError(f"librdkafka names the handle {name!r}, not {client_id}#producer-N")
    return int(pointer)


_LIBRARY: Librdkafka | None = None


def library() -> Librdkafka:
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = Librdkafka()
    return _LIBRARY


class LoopReports:
    """Serve ``producer``'s reports (delivery, errors, librdkafka's log) on ``loop``'s thread
    whenever librdkafka signals its queue. ``start`` raises LayoutError, leaving nothing
    behind, when the handle cannot be trusted; ``stop`` detaches (the caller serves what is
    left elsewhere, as a flush does)."""

    def __init__(
        self, producer: confluent_kafka.Producer, client_id: str, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.producer = producer
        self.client_id = client_id
        self.loop = loop
        self.wakeups = 0
        self._queue: int | None = None
        self._pipe: tuple[int, int] | None = None
        self._tick: asyncio.TimerHandle | None = None

    def start(self) -> None:
        try:
            lib = library()
        except (OSError, LayoutError) as err:
            raise LayoutError(f"librdkafka cannot be called: {err}") from err
        handle = producer_handle(lib, self.producer, self.client_id)
        queue = lib.lib.rd_kafka_queue_get_main(handle)
        if not queue:
            raise LayoutError("librdkafka gave no main queue")
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._queue, self._pipe = queue, (read_end, write_end)
        # librdkafka writes while holding its queue's lock: never block it (a full pipe
        # already says what a write would)
        lib.lib.rd_kafka_queue_io_event_enable(queue, write_end, ctypes.c_char_p(b"1"), 1)
        self.loop.add_reader(read_end, self._readable)
        self._tick = self.loop.call_later(TICK_SECONDS, self._on_tick)
        self.serve()  # whatever came before the pipe was watched

    def _readable(self) -> None:
        self.wakeups += 1
        if self._pipe is None:
            return
        # empty the pipe before serving: a report queued after the serve writes again
        with contextlib.suppress(BlockingIOError):
            while os.read(self._pipe[0], 4096):
                pass
        self.serve()

    def serve(self) -> None:
        try:
            self.producer.poll(0)
        except Exception:  # a report's callback raised: the tick serves what it left
            log.exception("serving librdkafka's reports failed")

    def _on_tick(self) -> None:
        self.serve()
        self._tick = self.loop.call_later(TICK_SECONDS, self._on_tick)

    def stop(self) -> None:
        """No more writes, no more reads: librdkafka lets go of the pipe before it closes."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        if self._queue is not None:
            lib = library().lib
            lib.rd_kafka_queue_io_event_enable(self._queue, -1, None, 0)
            lib.rd_kafka_queue_destroy(self._queue)
            self._queue = None
        if self._pipe is not None:
            read_end, write_end = self._pipe
            self._pipe = None
            with contextlib.suppress(RuntimeError):  # the loop closed already
                self.loop.remove_reader(read_end)
            os.close(read_end)
            os.close(write_end)
