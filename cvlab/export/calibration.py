"""INT8 calibration data for the TensorRT engine build.

:class:`CalibrationBatches` turns image files into contiguous float32 NCHW batches preprocessed
exactly as at inference (:func:`cvlab.inference.preprocess.preprocess_images`: resize to the model size,
RGB, scale 1/255). :class:`CalibrationCache` is the calibration-table file TensorRT writes once
and reads on later builds (so calibration runs only once). :func:`make_entropy_calibrator` wraps
both in a ``tensorrt.IInt8EntropyCalibrator2``; it needs TensorRT and a GPU.

Example:
    >>> batches = CalibrationBatches(["a.jpg", "b.jpg"], batch_size=2, input_size=(960, 544))  # doctest: +SKIP
    >>> next(iter(batches)).shape  # doctest: +SKIP
    (2, 3, 544, 960)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvlab.detectnet import INPUT_NAME, PEOPLENET_INPUT_SIZE
from cvlab.fileio import atomic_write_bytes


class CalibrationBatches:
    """Full batches of preprocessed calibration images, ``[B, 3, H, W]`` float32, C-contiguous.

    Only full batches are produced (TensorRT calibrates with a fixed batch size); at most
    ``max_batches``. Unreadable images raise (calibrating on fewer images than planned would
    silently change the INT8 scales).
    """

    def __init__(
        self,
        image_paths: Sequence[str | os.PathLike],
        batch_size: int,
        input_size: tuple[int, int] = PEOPLENET_INPUT_SIZE,
        max_batches: int | None = None,
        progress: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.image_paths = [str(p) for p in image_paths]
        if len(self.image_paths) < batch_size:
            raise ValueError(
                f"calibration needs at least one full batch: {len(self.image_paths)} image(s) "
                f"for batch_size {batch_size}"
            )
        self.batch_size = int(batch_size)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        n = len(self.image_paths) // self.batch_size
        self.num_batches = min(n, max_batches) if max_batches else n
        self.progress = progress

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Shape of every batch: ``(B, 3, H, W)``."""
        w, h = self.input_size
        return (self.batch_size, 3, h, w)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * 4

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[np.ndarray]:
        from cvlab.inference.preprocess import preprocess_images

        batches = range(self.num_batches)
        if self.progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="calibration batches", unit="batch")
        for b in batches:
            chunk = self.image_paths[b * self.batch_size : (b + 1) * self.batch_size]
            tensor = preprocess_images(chunk, self.input_size, on_error="raise").tensor
            yield np.ascontiguousarray(tensor, dtype=np.float32)


@dataclass
class CalibrationCache:
    """The calibration table file (``--calib`` of trtexec, ``-c`` of tao-converter)."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def read(self) -> bytes | None:
        """The cached table, or None when there is none yet (then TensorRT calibrates)."""
        return self.path.read_bytes() if self.path.is_file() else None

    def write(self, data: bytes) -> None:
        """Store the table atomically."""
        atomic_write_bytes(self.path, bytes(data))


class HostBuffer:
    """A page of host memory with a raw pointer, the stand-in for device memory where a
    calibrator is exercised without a GPU (and the staging buffer of :class:`CudaBuffer`)."""

    def __init__(self, nbytes: int) -> None:
        self.array = np.empty(nbytes // 4, np.float32)
        self.ptr = int(self.array.ctypes.data)

    def copy_from(self, host: np.ndarray) -> None:
        self.array[: host.size] = host.reshape(-1)

    def free(self) -> None:
        self.array = np.empty(0, np.float32)


class CudaBuffer:
    """Device memory through cuda-python (``pip install cuda-python``), for real calibration."""

    def __init__(self, nbytes: int) -> None:
        try:  # cuda-python >= 12.8
            from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
        except ImportError:
            from cuda import cudart  # type: ignore[import-not-found]

        err, ptr = cudart.cudaMalloc(nbytes)
        if int(err) != 0:
            raise RuntimeError(f"cudaMalloc({nbytes}) failed: {err}")
        self._cudart, self.ptr, self.nbytes = cudart, int(ptr), nbytes

    def copy_from(self, host: np.ndarray) -> None:
        host = np.ascontiguousarray(host, np.float32)
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        (err,) = self._cudart.cudaMemcpy(self.ptr, host.ctypes.data, host.nbytes, kind)
        if int(err) != 0:
            raise RuntimeError(f"cudaMemcpy failed: {err}")

    def free(self) -> None:
        self._cudart.cudaFree(self.ptr)


def make_entropy_calibrator(
    batches: CalibrationBatches,
    cache_file: str | os.PathLike,
    allocator: Callable[[int], HostBuffer | CudaBuffer] = CudaBuffer,
    input_name: str = INPUT_NAME,
):
    """A ``tensorrt.IInt8EntropyCalibrator2`` feeding ``batches`` and using ``cache_file``.

    With a cache file present TensorRT reads it and no batch is preprocessed. ``allocator``
    gives the memory whose pointer TensorRT reads (device memory on a GPU).
    """
    import tensorrt as trt  # type: ignore[import-not-found]

    cache = CalibrationCache(Path(cache_file))

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        """Feeds preprocessed image batches to TensorRT's INT8 entropy calibration."""

        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = batches
            self.cache = cache
            self.input_name = input_name
            self._iterator: Iterator[np.ndarray] | None = None
            self._buffer = None
            self.batches_served = 0

        def get_batch_size(self) -> int:
            return self.batches.batch_size

        def get_batch(self, names, *args) -> list[int] | None:
            if self._iterator is None:
                self._iterator = iter(self.batches)
                self._buffer = allocator(self.batches.nbytes)
            try:
                batch = next(self._iterator)
            except StopIteration:
                return None
            self._buffer.copy_from(batch)
            self.batches_served += 1
            return [self._buffer.ptr for _ in names]

        def read_calibration_cache(self) -> bytes | None:
            return self.cache.read()

        def write_calibration_cache(self, data) -> None:
            self.cache.write(bytes(data))

    return EntropyCalibrator()
