"""Tensors through system shared memory: the client writes, Triton reads and answers in place.

A batch of eight 960x544 frames is 50 MB of float32; sent in the request body it is copied and
parsed on both sides, which costs more than the model itself on a small CPU server. When the
server runs on the same host, :class:`InputSlots` keeps a few POSIX shared-memory regions
(``/dev/shm``), registers them with the server, and the preprocessing writes each batch
straight into a free slot; the request then only names the region, and the server writes the
outputs into the same region after the input (as ``perf_analyzer --shared-memory=system``).

Only for servers on this machine (127.0.0.1/localhost): a server behind a port-forward or in
another container has its own ``/dev/shm``, registration then fails and the client falls back to
sending tensors in the request (see :func:`cvlab.triton.client.TritonDetectNetClient`).

Example:
    >>> slots = InputSlots(client, count=4, batch_shape=(8, 3, 544, 960))  # doctest: +SKIP
    >>> slot = slots.acquire()  # doctest: +SKIP
    >>> slot.array[:2] = batch  # doctest: +SKIP
    >>> inp.set_shared_memory(slot.name, slot.byte_size(2))  # doctest: +SKIP
    >>> slots.release(slot)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from cvlab.errors import CvlabError

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]", "ip6-localhost")
SHM_DIR = "/dev/shm"
#: /dev/shm must keep this much free beyond the slots (Docker's default is only 64 MB; writing
#: past a tmpfs's space is a SIGBUS, not an error, so space is checked before creating slots)
SHM_HEADROOM_BYTES = 64 * 1024 * 1024
#: seconds :meth:`InputSlots.close` waits for requests still reading a region (an interrupted run)
UNREGISTER_WAIT_S = 10.0
#: the name of every region a client creates: ``cvlab_<its pid>_<8 hex>_<slot index>``
_REGION_NAME = re.compile(r"^cvlab_(\d+)_[0-9a-f]{8}_\d+$")


class SharedMemoryUnavailable(CvlabError, RuntimeError):
    """Shared memory cannot be used with this server (remote, no space, or registration refused)."""


class SlotsClosed(RuntimeError):
    """The slots were closed while a caller waited for one."""


def is_loopback(url: str) -> bool:
    """True when ``host:port`` names this machine (shared memory can only reach such a server).

    Example:
        >>> is_loopback("127.0.0.1:8000"), is_loopback("localhost:8001"), is_loopback("10.0.0.5:8000")
        (True, True, False)
    """
    host = url.split("://", 1)[-1]
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def region_owner(name: str) -> int | None:
    """The pid of the cvlab client that created region ``name`` (None for other names).

    Example:
        >>> region_owner("cvlab_4242_0a1b2c3d_0"), region_owner("perf_analyzer_input")
        (4242, None)
    """
    match = _REGION_NAME.match(name.lstrip("/"))
    return int(match.group(1)) if match else None


def shm_free_bytes(directory: str = SHM_DIR) -> int:
    """Free bytes on the shared-memory filesystem (0 when it does not exist)."""
    try:
        stats = os.statvfs(directory)
    except OSError:
        return 0
    return stats.f_bavail * stats.f_frsize


@dataclass
class Slot:
    """One registered region: the input of up to ``array.shape[0]`` images, then each output."""

    name: str  # the name the server knows the region by
    array: np.ndarray  # [max_batch, 3, H, W] view of the region
    index: int
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [max_batch, ...] view
    output_offsets: dict[str, int] = field(default_factory=dict)  # name -> byte offset

    def byte_size(self, batch: int) -> int:
        """Bytes of the first ``batch`` images (what a request of ``batch`` images reads)."""
        return int(batch) * int(self.array[0].nbytes)

    def output_area(self, name: str, batch: int) -> tuple[int, int]:
        """``(byte size, offset)`` where the server writes output ``name`` of ``batch`` images."""
        return int(batch) * int(self.outputs[name][0].nbytes), self.output_offsets[name]


class InputSlots:
    """``count`` shared-memory regions of ``batch_shape`` registered with a Triton server.

    Args:
        client: a ``tritonclient.http`` or ``tritonclient.grpc`` InferenceServerClient.
        count: regions (requests in flight plus batches being prepared).
        batch_shape: ``(max_batch, 3, H, W)`` of one region.
        dtype: element type (the model input's).
        outputs: ``{name: (per-image shape, dtype)}`` of the outputs the server writes into the
            region after the input (empty: outputs come back in the response).

    Raises:
        SharedMemoryUnavailable: not enough free space in /dev/shm, or the server refused to
            register a region (it runs elsewhere, e.g. behind ``kubectl port-forward``).
    """

    def __init__(
        self,
        client: Any,
        count: int,
        batch_shape: tuple[int, ...],
        dtype: Any = np.float32,
        outputs: dict[str, tuple[tuple[int, ...], Any]] | None = None,
    ):
        self.client = client
        self.batch_shape = tuple(int(d) for d in batch_shape)
        self.dtype = np.dtype(dtype)
        self.input_bytes = int(np.prod(self.batch_shape)) * self.dtype.itemsize
        self.output_layout: dict[str, tuple[tuple[int, ...], np.dtype, int]] = {}
        offset = self.input_bytes
        for name, (shape, out_dtype) in (outputs or {}).items():
            full = (self.batch_shape[0], *(int(d) for d in shape))
            self.output_layout[name] = (full, np.dtype(out_dtype), offset)
            offset += int(np.prod(full)) * np.dtype(out_dtype).itemsize
            offset += -offset % 64  # keep each output aligned
        self.byte_size_each = offset
        needed = count * self.byte_size_each
        free = shm_free_bytes()
        if free < needed + SHM_HEADROOM_BYTES:
            raise SharedMemoryUnavailable(
                f"{SHM_DIR} has {free / 2**20:.0f} MiB free; {count} input slot(s) of "
                f"{self.byte_size_each / 2**20:.0f} MiB need {needed / 2**20:.0f} MiB plus "
                f"{SHM_HEADROOM_BYTES / 2**20:.0f} MiB headroom"
            )
        self._token = f"cvlab_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._regions: list[shared_memory.SharedMemory] = []
        self._registered: list[str] = []
        self._slots: list[Slot] = []
        self._free: list[Slot] = []
        self._cond = threading.Condition()
        self._closed = False
        #: regions still registered after close() (requests kept reading them past its wait)
        self.left_registered: list[str] = []
        try:
            for i in range(int(count)):
                self._add(i)
        except BaseException:
            self.close()
            raise

    def _add(self, index: int) -> None:
        key = f"{self._token}_{index}"
        try:
            region = shared_memory.SharedMemory(name=key, create=True, size=self.byte_size_each)
        except OSError as exc:
            raise SharedMemoryUnavailable(f"cannot create {SHM_DIR}/{key}: {exc}") from None
        self._regions.append(region)
        try:
            self.client.register_system_shared_memory(key, "/" + key, self.byte_size_each)
        except Exception as exc:  # noqa: BLE001 - any refusal means "not usable here"
            raise SharedMemoryUnavailable(
                f"the server did not register shared-memory region /{key}: {exc}"
            ) from None
        self._registered.append(key)
        array = np.ndarray(self.batch_shape, self.dtype, buffer=region.buf)
        slot = Slot(key, array, index)
        for name, (shape, out_dtype, offset) in self.output_layout.items():
            slot.outputs[name] = np.ndarray(shape, out_dtype, buffer=region.buf, offset=offset)
            slot.output_offsets[name] = offset
        self._slots.append(slot)
        self._free.append(slot)

    def ensure_registered(self) -> None:
        """Register again any region the server forgot.

        Another client may unregister every region (perf_analyzer does at its start and end);
        requests naming a forgotten region fail with "Unable to find shared memory region".
        """
        for key in list(self._registered):
            try:
                self.client.register_system_shared_memory(key, "/" + key, self.byte_size_each)
            except Exception as exc:  # noqa: BLE001 - "already in manager" is the usual answer
                if "already" not in str(exc).lower():
                    raise SharedMemoryUnavailable(
                        f"the server did not register shared-memory region /{key} again: {exc}"
                    ) from None

    @property
    def count(self) -> int:
        return len(self._slots)

    @property
    def closed(self) -> bool:
        return self._closed

    def fits(self, batch: int, count: int, image_shape: tuple[int, ...], dtype: Any) -> bool:
        """True when these slots can serve ``count`` requests of ``batch`` images."""
        return (
            not self._closed
            and self.count >= count
            and self.batch_shape[0] >= batch
            and self.batch_shape[1:] == tuple(image_shape)
            and self.dtype == np.dtype(dtype)
        )

    def acquire(self, timeout: float | None = None) -> Slot:
        """A free slot; waits for one to be released. Raises :class:`SlotsClosed` after close()."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._free or self._closed, timeout):
                raise TimeoutError(f"no free shared-memory slot within {timeout} s")
            if self._closed:
                raise SlotsClosed("shared-memory slots were closed")
            return self._free.pop()

    def release(self, slot: Slot | None) -> None:
        """Give ``slot`` back (None is ignored)."""
        if slot is None:
            return
        with self._cond:
            if slot not in self._free:
                self._free.append(slot)
            self._cond.notify()

    def stop_acquiring(self) -> None:
        """From now on acquire() raises :class:`SlotsClosed` (waiting callers are woken); the
        regions stay mapped and registered until :meth:`close`, so threads still writing into
        a slot they hold finish safely."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def close(self, wait_s: float = UNREGISTER_WAIT_S, *, unregister: bool = True) -> None:
        """Unregister and unlink every region; waiting acquire() calls raise SlotsClosed.

        A region that requests still read (an interrupted run) cannot be unregistered: the
        server answers "currently in use". Those are tried again until ``wait_s`` seconds have
        passed, so the server does not keep them mapped after their files are unlinked (a
        region left registered is released by :class:`~cvlab.triton.server.TritonServer`'s
        sweep once its file is gone). Any other failure (a timeout, a refused connection: the
        server stalled or went away) ends the unregistering at once, every region left
        registered; ``unregister=False`` does not ask the server at all. The regions are
        unmapped: no thread may still write into a slot (call :meth:`stop_acquiring`, then
        wait for the writers, then this).
        """
        self.stop_acquiring()
        pending, self._registered = list(self._registered), []
        if not unregister:
            self.left_registered, pending = pending, []
        deadline = time.monotonic() + max(0.0, wait_s)
        while pending:
            busy = []
            for i, key in enumerate(pending):
                try:
                    self.client.unregister_system_shared_memory(key)
                except Exception as exc:  # noqa: BLE001 - only "in use" is worth a retry
                    text = str(exc).lower()
                    if "in use" in text:
                        busy.append(key)
                    elif "unable to find" not in text:  # the server cannot answer: stop
                        busy, deadline = busy + pending[i:], 0.0
                        break
            pending = busy
            if pending and time.monotonic() < deadline:
                time.sleep(0.02)
            else:
                break
        self.left_registered = self.left_registered or pending
        self._free = []
        for slot in self._slots:
            slot.array = np.empty(0, self.dtype)  # drop the views so the mapping can close
            slot.outputs = {}
        self._slots = []
        for region in self._regions:
            with contextlib.suppress(FileNotFoundError):
                region.unlink()
            with contextlib.suppress(BufferError):  # a caller still holds a view: GC closes it
                region.close()
        self._regions = []

    def __enter__(self) -> InputSlots:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        # garbage collection (often at interpreter exit): unlink the files only; no request to
        # the server, which may be gone (a network call during finalisation can hang)
        self._registered = []
        with contextlib.suppress(Exception):
            self.close()
