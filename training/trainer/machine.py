"""What a training run needs to know and set about the machine it runs on: the CPU's name (recorded
in each run's summary) and glibc's treatment of large blocks (a 3x slowdown of CPU training steps)."""
from __future__ import annotations

import ctypes
import platform


def cpu_model() -> str:
    """'Intel(R) Xeon(R) Processor (AMX-BF16)': the CPU's name and whether it has bf16 matrix units, which
    decide training speed more than anything else (platform.processor() is empty on Linux)."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    units = [label for flag, label in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16")) if flag in flags]
    return f"{name} ({units[0]})" if units else name


def heap_for_large_blocks(enable: bool = True) -> bool:
    """Keep freed large blocks in glibc's heap instead of returning them to the kernel.

    glibc serves large blocks (over 128 kB to 32 MB, its threshold adapts) with mmap and unmaps them
    when freed, so the big activations of each step (75 MB for 128 x 128 x 48 x 48 bf16) are
    page-faulted and zeroed afresh by the kernel: measured, that made element-wise ops 3x slower. M_MMAP_MAX=0 and a huge M_TRIM_THRESHOLD keep the
    step's peak memory mapped for the next step; `enable=False` restores glibc's behaviour. Returns
    whether the allocator took the settings (False off glibc, e.g. on macOS).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
    if enable:
        return bool(libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    # glibc's steady state once a training step has freed its large blocks: its adaptive threshold at the cap
    return bool(libc.mallopt(M_MMAP_MAX, 65536) and libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
                and libc.mallopt(M_TRIM_THRESHOLD, 64 << 20))
