"""Loading profiles: the YAML files that describe a workspace and every stage run.

A profile is validated against the schema of :mod:`eosfm_cli.profile_schema`, in which extra
keys are forbidden, so a typo is an error that names the file, the key path and the closest
valid key. A profile may start with ``include: other.yaml`` (a path relative to it, or a list of
paths); the included files are loaded first and this file's keys are merged over them.
Command-line overrides (``--set trainer.max_epochs=3``) are applied last, with values parsed as
YAML scalars.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from eosfm_cli.errors import ProfileError
from eosfm_cli.profile_schema import Profile


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ProfileError(
            "profile file not found",
            where=str(path),
            hint="pass an existing file with --profile, e.g. profiles/default.yaml",
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ProfileError(
            f"YAML syntax error: {problem}", where=loc, hint="fix the YAML"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError(
            f"cannot read profile: {err}", where=str(path), hint="pass a readable UTF-8 file"
        ) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as err:
        # PyYAML's constructors raise these for values such as the date 2024-13-01.
        raise ProfileError(
            f"YAML value error: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
            where=str(path),
            hint="fix or quote the value",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProfileError(
            "a profile must be a YAML mapping of keys to values",
            where=str(path),
            hint="start the file with keys such as `workspace:` and `trainer:`",
        )
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Merge ``over`` into a copy of ``base``; nested mappings merge, everything else replaces.

    Args:
        base: the lower-priority mapping.
        over: the higher-priority mapping.

    Returns:
        A new merged mapping.
    """
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load a profile file and resolve its ``include`` chain, without validating it.

    Args:
        path: the profile file.

    Returns:
        The merged mapping.

    Raises:
        ProfileError: on a missing file, a YAML error, or an include cycle.
    """
    p = Path(path).resolve()
    if p in _seen:
        raise ProfileError("include cycle", where=str(p), hint="remove the circular include")
    data = _read_yaml(p)
    includes = data.pop("include", None)
    if includes is None:
        return data
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ProfileError("`include` must be a path or a list of paths", where=f"{p}: include")
    merged: dict[str, Any] = {}
    for inc in includes:
        merged = deep_merge(merged, load_raw(p.parent / inc, (*_seen, p)))
    return deep_merge(merged, data)


def parse_set(expr: str) -> tuple[list[str], Any]:
    """Parse one ``--set KEY=VALUE`` override.

    Args:
        expr: ``a.b.c=value``; the value is parsed as a YAML scalar (or flow list/mapping).

    Returns:
        The key path and the parsed value.

    Raises:
        ProfileError: if the expression has no ``=`` or an empty key.
    """
    if "=" not in expr:
        raise ProfileError(
            f"bad --set {expr!r}: expected KEY=VALUE",
            where="--set",
            hint="write e.g. --set trainer.max_epochs=5",
        )
    key, raw = expr.split("=", 1)
    parts = [k.strip() for k in key.strip().split(".")]
    if not all(parts):
        raise ProfileError(
            f"bad --set {expr!r}: empty key",
            where="--set",
            hint="write e.g. --set trainer.max_epochs=5",
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):
        raise ProfileError(
            f"bad --set {expr!r}: the value is not valid YAML",
            where="--set",
            hint="quote strings that contain ':' or brackets",
        ) from None
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a raw profile mapping (returns a new mapping)."""
    out = copy.deepcopy(data)
    for expr in overrides:
        parts, value = parse_set(expr)
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ProfileError(
                    f"bad --set {expr!r}: {'.'.join(parts[: i + 1])} is not a mapping",
                    where="--set",
                )
            node = nxt
        node[parts[-1]] = value
    return out


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Return the valid keys at a location of the schema, for did-you-mean hints."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        current = _model_in(ann)
        if current is None:
            return []
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def validate(data: dict[str, Any], source: str) -> Profile:
    """Validate a raw mapping against the schema.

    Args:
        data: the raw profile mapping.
        source: the file (or description) it came from, used in error messages.

    Returns:
        The validated profile.

    Raises:
        ProfileError: one line naming the source, the key path, the problem and a hint.
    """
    try:
        return Profile.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(first["loc"])
        key = ".".join(str(p) for p in loc)
        kind = first["type"]
        hint: str | None
        if kind == "extra_forbidden":
            valid = _valid_keys(Profile, loc)
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = (
                f"did you mean {'.'.join([*map(str, loc[:-1]), close[0]])!r}?"
                if close
                else f"valid keys here: {', '.join(valid)}"
            )
            message = "unknown key"
        else:
            message = first["msg"]
            if "input" in first and not isinstance(first["input"], dict | list):
                message += f" (got {first['input']!r})"
            hint = "fix the value in the profile or with --set"
        more = len(err.errors()) - 1
        if more:
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ProfileError(message, where=f"{source}: {key}", hint=hint) from None


def load_profile(
    path: str | Path,
    overrides: list[str] | None = None,
    overlay: str | Path | None = None,
    dataset: dict[str, Any] | None = None,
) -> Profile:
    """Load, merge and validate a profile.

    Args:
        path: the base profile file.
        overrides: ``--set KEY=VALUE`` expressions, applied last.
        overlay: an optional second profile (e.g. ``profiles/datasets/NAME.yaml``) whose own
            keys (not its includes) are merged over the base; its ``dataset`` section replaces
            the base's whole.
        dataset: an experiment's ``dataset`` section (the registry's facts): it replaces the
            base's whole, and the overlay's ``dataset`` keys are merged over it.

    Returns:
        The validated profile.
    """
    data = load_raw(path)
    source = str(path)
    if dataset is not None:  # an experiment replaces the dataset section whole
        data["dataset"] = copy.deepcopy(dataset)
    if overlay is not None:
        over = _read_yaml(Path(overlay))
        over.pop("include", None)
        if "dataset" in over and dataset is None:
            data.pop("dataset", None)
        data = deep_merge(data, over)
        source = f"{path} + {overlay}"
    if overrides:
        data = apply_overrides(data, overrides)
        source += " + --set"
    return validate(data, source)


def dump_yaml(profile: Profile) -> str:
    """Render a profile as YAML."""
    return yaml.safe_dump(profile.to_dict(), sort_keys=False)
