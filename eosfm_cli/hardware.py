"""What this machine can do, and what the profile's ``auto`` settings resolve to on it.

The CPU's flags are read from ``/proc/cpuinfo`` (Linux; elsewhere none are known and bf16 is
never assumed), CUDA's abilities from torch. Nothing here is a hardware fact written in
advance: every answer comes from the machine it runs on.

``auto`` precision is bf16 mixed precision where the hardware runs bf16 natively (a CUDA
device with bf16, a CPU with ``avx512_bf16`` or ``amx_bf16``) and 32-bit elsewhere. ``auto``
compile compiles a run long enough to pay back ``torch.compile``'s one-off cost: the
thresholds below are twice the break-even points measured with a cold compiler cache (see
``docs/performance.md``, "Choosing auto compile").
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

#: CPU flags that change how fast (or whether) bf16 and wide vectors run.
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
#: CPU flags that mean native bf16 arithmetic.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: ``auto`` compiles specialist training from this many optimiser steps (bf16 mixed, fp32).
COMPILE_MIN_STEPS = {"bf16": 2500, "fp32": 12000}
#: ``auto`` compiles the frozen ensemble from this many samples to encode.
ENSEMBLE_COMPILE_MIN_SAMPLES = 5000


@dataclass(frozen=True)
class Machine:
    """The machine a run happens on.

    Attributes:
        cpu_model: the CPU's model name (``platform.processor()`` when unknown).
        cores: logical CPUs of the machine.
        threads: torch's intra-op threads.
        flags: the :data:`RELEVANT_FLAGS` this CPU has.
        torch: torch's version.
        cuda: the first CUDA device's name, or ``None``.
    """

    cpu_model: str
    cores: int
    threads: int
    flags: tuple[str, ...]
    torch: str
    cuda: str | None

    def as_dict(self) -> dict[str, object]:
        """The fields as a JSON-ready dict."""
        out = asdict(self)
        out["flags"] = list(self.flags)
        return out

    def describe(self) -> str:
        """One line: model, cores, threads, flags, torch and CUDA."""
        flags = " ".join(self.flags) or "none of " + "/".join(RELEVANT_FLAGS)
        gpu = f", CUDA {self.cuda}" if self.cuda else ", no CUDA"
        return (
            f"{self.cpu_model}, {self.cores} cores, {self.threads} torch threads, "
            f"flags: {flags}, torch {self.torch}{gpu}"
        )


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, frozenset[str]]:
    """The model name and flags of the first CPU listed in ``path``."""
    model, flags = "", frozenset[str]()
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
        if model and flags:
            break
    return model, flags


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """All flags of this CPU (empty where ``/proc/cpuinfo`` cannot be read)."""
    return _cpuinfo()[1]


def machine() -> Machine:
    """Describe this machine."""
    import torch

    model = _cpuinfo()[0] or platform.processor() or platform.machine() or "unknown CPU"
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return Machine(
        cpu_model=model,
        cores=os.cpu_count() or 1,
        threads=torch.get_num_threads(),
        flags=tuple(f for f in RELEVANT_FLAGS if f in cpu_flags()),
        torch=torch.__version__,
        cuda=cuda,
    )


def device_kind(accelerator: str) -> str:
    """``cuda`` or ``cpu``: where Lightning's ``accelerator`` setting runs the work."""
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu"


def bf16_native(accelerator: str = "cpu") -> tuple[bool, str]:
    """Whether the device runs bf16 natively, and why.

    Args:
        accelerator: Lightning's accelerator setting (``auto``, ``cpu``, ``gpu``, ``cuda``).
    """
    if device_kind(accelerator) == "cuda":
        import torch

        name = torch.cuda.get_device_name(0)
        if torch.cuda.is_bf16_supported():
            return True, f"CUDA device {name} supports bf16"
        return False, f"CUDA device {name} has no bf16"
    found = [f for f in BF16_FLAGS if f in cpu_flags()]
    if found:
        return True, f"the CPU has {' and '.join(found)}"
    if not cpu_flags():
        return False, "the CPU's flags cannot be read, so bf16 is not assumed"
    return False, f"the CPU has none of {', '.join(BF16_FLAGS)}"


@dataclass(frozen=True)
class Resolved:
    """What an ``auto`` setting became.

    Attributes:
        value: the concrete setting.
        why: one clause saying why (or ``"set in the profile"``).
    """

    value: str | bool
    why: str


def resolve_precision(value: str, accelerator: str) -> Resolved:
    """The Lightning precision a ``trainer.precision`` setting means here.

    Args:
        value: ``auto`` or any Lightning precision (``32-true``, ``bf16-mixed``...).
        accelerator: the trainer's accelerator setting.
    """
    if value != "auto":
        return Resolved(value, "set in the profile")
    native, why = bf16_native(accelerator)
    return Resolved("bf16-mixed" if native else "32-true", why)


def resolve_ensemble_precision(value: str, accelerator: str) -> Resolved:
    """The frozen ensemble's precision (``fp32`` or ``bf16``) an ``ensemble.precision`` means."""
    if value != "auto":
        return Resolved(value, "set in the profile")
    native, why = bf16_native(accelerator)
    return Resolved("bf16" if native else "fp32", why)


def resolve_compile(value: bool | str, steps: int, precision: str = "32-true") -> Resolved:
    """Whether to compile specialist training.

    Args:
        value: ``true``, ``false`` or ``auto`` (``trainer.compile``).
        steps: optimiser steps of the run.
        precision: the resolved Lightning precision (bf16 pays back sooner).
    """
    if value != "auto":
        return Resolved(bool(value), "set in the profile")
    kind = "bf16" if precision.startswith("bf16") else "fp32"
    need = COMPILE_MIN_STEPS[kind]
    if steps >= need:
        return Resolved(True, f"{steps} steps, at least the {need} that pay for compiling")
    return Resolved(False, f"{steps} steps, fewer than the {need} that pay for compiling")


def resolve_channels_last(value: bool | str, precision: str, accelerator: str) -> Resolved:
    """Whether specialist training keeps its weights and batches channels-last (NHWC).

    cuDNN runs convolutions fastest on channels-last tensors, so ``auto`` uses them on CUDA.
    On the CPU, ``auto`` stays contiguous: a single fp32 training step ran faster
    channels-last, but the Lightning training benchmark measured it slower, and bf16
    channels-last was slower in both. ``true`` turns it on (see ``docs/performance.md``,
    "Where training time goes").

    Args:
        value: ``true``, ``false`` or ``auto`` (``trainer.channels_last``).
        precision: the resolved Lightning precision.
        accelerator: the trainer's accelerator setting.
    """
    if value != "auto":
        return Resolved(bool(value), "set in the profile")
    if device_kind(accelerator) == "cuda":
        return Resolved(True, "CUDA convolutions are fastest channels-last")
    kind = "bf16" if precision.startswith("bf16") else "fp32"
    return Resolved(False, f"channels-last {kind} training was not measured faster on the CPU")


def resolve_ensemble_compile(value: bool | str, samples: int | None) -> Resolved:
    """Whether to compile the frozen ensemble for a job of ``samples`` inputs.

    Args:
        value: ``true``, ``false`` or ``auto`` (``ensemble.compile``).
        samples: inputs the ensemble will encode (``None``: unknown, so eager).
    """
    if value != "auto":
        return Resolved(bool(value), "set in the profile")
    need = ENSEMBLE_COMPILE_MIN_SAMPLES
    if samples is None:
        return Resolved(False, "the amount of work is not known")
    if samples >= need:
        return Resolved(True, f"{samples} samples, at least the {need} that pay for compiling")
    return Resolved(False, f"{samples} samples, fewer than the {need} that pay for compiling")


def describe_auto(
    accelerator: str,
    trainer_precision: str,
    trainer_compile: bool | str,
    ensemble_precision: str,
    ensemble_compile: bool | str,
    trainer_channels_last: bool | str = "auto",
) -> list[str]:
    """One line per ``auto`` setting: what it resolves to here, and why (for ``--dry-run``)."""
    lines = []
    if trainer_precision == "auto":
        r = resolve_precision("auto", accelerator)
        lines.append(f"trainer.precision: auto -> {r.value} ({r.why})")
    if trainer_channels_last == "auto":
        p = str(resolve_precision(trainer_precision, accelerator).value)
        r = resolve_channels_last("auto", p, accelerator)
        lines.append(f"trainer.channels_last: auto -> {r.value} ({r.why})")
    if trainer_compile == "auto":
        steps = ", ".join(f"{n} with {k}" for k, n in COMPILE_MIN_STEPS.items())
        lines.append(f"trainer.compile: auto -> compiled from {steps} optimiser steps, else eager")
    if ensemble_precision == "auto":
        r = resolve_ensemble_precision("auto", accelerator)
        lines.append(f"ensemble.precision: auto -> {r.value} ({r.why})")
    if ensemble_compile == "auto":
        lines.append(
            f"ensemble.compile: auto -> compiled when a job encodes at least "
            f"{ENSEMBLE_COMPILE_MIN_SAMPLES} samples, else eager"
        )
    return lines
