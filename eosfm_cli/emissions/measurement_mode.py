"""How a started CodeCarbon tracker obtains CPU, GPU and RAM power: the quality of a figure.

A RAPL or NVML counter is a measurement; a ``cpu-load estimate`` or a ``constant`` is a model.
The emissions report counts the runs whose CPU power is modelled.
"""

from __future__ import annotations

from typing import Any

_CPU_MODES = {
    "intel_rapl": "RAPL",
    "windows_emi": "RAPL (Windows EMI)",
    "intel_power_gadget": "Intel Power Gadget",
    "apple_powermetrics": "powermetrics",
}


def describe_mode(tracker: Any) -> str:
    """Describe how a started tracker obtains CPU, GPU and RAM power.

    Reads the tracker's hardware objects (CodeCarbon internals, read defensively: an
    unknown layout gives ``unknown``).

    Args:
        tracker: a started CodeCarbon tracker.

    Returns:
        A string such as ``cpu: RAPL; gpu: pynvml (1 x NVIDIA H100); ram: model estimate``.
    """
    parts: dict[str, str] = {}
    conf: dict[str, Any] = getattr(tracker, "_conf", {}) or {}
    for hw in getattr(tracker, "_hardware", []) or []:
        kind = type(hw).__name__
        if kind == "CPU":
            mode = str(getattr(hw, "_mode", "unknown"))
            tdp = getattr(hw, "_tdp", None)
            forced = getattr(tracker, "_force_cpu_power", None) is not None
            tdp_text = f"{'given' if forced else 'TDP'} {tdp} W" if tdp else "TDP unknown"
            if mode in _CPU_MODES:
                parts["cpu"] = _CPU_MODES[mode]
            elif mode == "cpu_load":
                parts["cpu"] = f"cpu-load estimate ({tdp_text})"
            elif mode == "constant":
                parts["cpu"] = f"constant ({tdp_text})"
            else:
                parts["cpu"] = mode
        elif kind == "GPU":
            devices = getattr(getattr(hw, "devices", None), "devices", None) or []
            names = {type(d).__name__ for d in devices}
            backend = "amdsmi" if any("Amd" in n or "AMD" in n for n in names) else "pynvml"
            model = conf.get("gpu_model") or ""
            parts["gpu"] = f"{backend} ({model})" if model else backend
        elif kind == "RAM":
            forced_ram = getattr(hw, "_force_ram_power", None)
            parts["ram"] = (
                f"constant ({forced_ram} W)" if forced_ram is not None else "model estimate"
            )
        elif kind == "AppleSiliconChip":
            parts[str(getattr(hw, "chip_part", "chip")).lower()] = "powermetrics"
        elif kind == "Raspberry":
            parts[str(getattr(hw, "chip_part", "chip")).lower()] = "Raspberry Pi PMIC"
    parts.setdefault("cpu", "unknown")
    parts.setdefault("gpu", "none")
    parts.setdefault("ram", "unknown")
    return "; ".join(f"{k}: {parts[k]}" for k in ("cpu", "gpu", "ram")) + "".join(
        f"; {k}: {v}" for k, v in parts.items() if k not in ("cpu", "gpu", "ram")
    )


def cpu_power_is_modelled(mode: str | None) -> bool:
    """Whether a record's CPU power comes from a model (load x TDP, constant), not a counter.

    Args:
        mode: a record's mode, as :func:`describe_mode` writes it (``None``: not known).
    """
    if not mode:
        return False
    cpu = next((p for p in mode.split(";") if p.strip().startswith("cpu:")), "")
    return "estimate" in cpu or "constant" in cpu
