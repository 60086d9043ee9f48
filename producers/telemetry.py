"""System telemetry: CPU, memory, disk and network IO, and per-GPU NVML readings.

Sampled on the sender's thread (never the training thread) every
``FLEETLOG_TELEMETRY_INTERVAL_SECONDS`` seconds and logged as ordinary metrics under
``sys/``, so they are stored, rolled up and charted like any other series; every
point carries its process's host and rank.  NVML (``nvidia-ml-py``) is optional:
without it, or without a GPU, only the host metrics are recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import psutil

__all__ = ["Sampler", "gpu_readings", "host_readings"]

log = logging.getLogger("fleetlog")


def host_readings(proc: psutil.Process) -> dict[str, float]:
    mem = psutil.virtual_memory()
    out = {
        "sys/cpu_percent": psutil.cpu_percent(interval=None),
        "sys/memory_used_bytes": float(mem.used),
        "sys/memory_percent": mem.percent,
        "sys/process_rss_bytes": float(proc.memory_info().rss),
    }
    disk = psutil.disk_io_counters()
    if disk is not None:
        out["sys/disk_read_bytes"] = float(disk.read_bytes)
        out["sys/disk_write_bytes"] = float(disk.write_bytes)
    net = psutil.net_io_counters()
    if net is not None:
        out["sys/net_sent_bytes"] = float(net.bytes_sent)
        out["sys/net_recv_bytes"] = float(net.bytes_recv)
    return out


def _nvml() -> Any | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no library, no driver, no GPU: host metrics only
        return None


def gpu_readings(nvml: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for i in range(nvml.nvmlDeviceGetCount()):
        h = nvml.nvmlDeviceGetHandleByIndex(i)
        util = nvml.nvmlDeviceGetUtilizationRates(h)
        mem = nvml.nvmlDeviceGetMemoryInfo(h)
        out[f"sys/gpu{i}/utilization_percent"] = float(util.gpu)
        out[f"sys/gpu{i}/memory_used_bytes"] = float(mem.used)
        out[f"sys/gpu{i}/memory_percent"] = 100.0 * mem.used / max(mem.total, 1)
        try:
            out[f"sys/gpu{i}/power_watts"] = nvml.nvmlDeviceGetPowerUsage(h) / 1000.0
            out[f"sys/gpu{i}/temperature_c"] = float(nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU))
        except Exception:  # some boards do not report power or temperature
            pass
    return out


class Sampler:
    """Calls ``record(readings)`` at most every ``interval_seconds``; cheap to call more often."""

    def __init__(self, record: Callable[[dict[str, float]], None], *, interval_seconds: float) -> None:
        self._record = record
        self._interval = interval_seconds
        self._next = 0.0
        self._proc = psutil.Process()
        self._nvml = _nvml()
        psutil.cpu_percent(interval=None)  # primes the counter: the first real sample is meaningful

    def __call__(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._interval
        try:
            readings = host_readings(self._proc)
            if self._nvml is not None:
                readings.update(gpu_readings(self._nvml))
        except Exception as exc:  # telemetry must never break the sender
            log.debug("fleetlog telemetry sample failed: %s", exc)
            return
        self._record(readings)
