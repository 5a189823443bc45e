"""What this device is: CPU architecture family, CPU model, OS, Python."""
from __future__ import annotations

import os
import platform
import sys
from typing import Any, Dict, Mapping, Optional

_ARM = ("aarch64", "arm64", "armv7l", "armv7", "armv8l", "armv6l", "arm")
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")


def machine() -> str:
    """The machine name the OS reports, e.g. x86_64 or aarch64."""
    return platform.machine() or "unknown"


def arch_family(name: Optional[str] = None) -> str:
    """'arm', 'x86' or 'unknown' for a machine name (this device's by default).

    WHERRY_DEVICE_ARCH (arm|x86) overrides this device's answer: it lets the
    arch checks be tested on one machine and lets a user of an unusual
    platform name say what it is.
    """
    if name is None and os.environ.get("WHERRY_DEVICE_ARCH"):
        return os.environ["WHERRY_DEVICE_ARCH"].strip().lower()
    name = (name or machine()).lower()
    if name in _ARM or name.startswith("arm"):
        return "arm"
    if name in _X86:
        return "x86"
    return "unknown"


def display_machine() -> str:
    """This device's machine name for messages (the override's family when one is set)."""
    if os.environ.get("WHERRY_DEVICE_ARCH"):
        return arch_family()
    return machine()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "CPU part"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


#: Set by the host for a device it emulates (the emulated aarch64 board: "qemu user-mode"): its ARM
#: kernels are real, its timings are the emulator's, and every report must say so.
EMULATION_ENV = "WHERRY_EMULATED"


def emulation() -> Optional[str]:
    """How this device is emulated ("qemu user-mode"), or None for a real one."""
    return os.environ.get(EMULATION_ENV) or None


def phrase(info: Mapping[str, Any]) -> str:
    """A device (its `describe()` dict, from wherever it ran) in one phrase for summaries:
    "x86_64", "aarch64, emulated (qemu user-mode)"."""
    machine_name = str(info.get("machine") or "unknown")
    return f"{machine_name}, emulated ({info['emulated']})" if info.get("emulated") else machine_name


def describe() -> Dict[str, Any]:
    return {
        **({"emulated": emulation()} if emulation() else {}),
        "machine": machine(),
        "arch": arch_family(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_executable": sys.executable,
    }
