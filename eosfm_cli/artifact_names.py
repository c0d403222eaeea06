"""Names of workspace artifacts: the one rule every ensemble, specialist and head run name obeys.

An artifact name becomes one path component inside the workspace, so the rule is checked both
where a profile is validated (``ensemble.name``) and where a stage takes a name from the command
line (``--name``, ``--run``).
"""

from __future__ import annotations

from eosfm_cli.errors import ProfileError

NAME_HINT = "use a plain name: letters, digits, '.', '_' or '-', no '/' and no leading '.'"


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot name a workspace artifact (a file or folder), or ``None``.

    Artifact names (ensemble, specialist and head run names) become one path component inside
    the workspace, so they may not hold a path separator, start with a dot (``..``, hidden
    files) or be empty.
    """
    if not value or not value.strip():
        return "an empty name"
    if "/" in value or "\\" in value or "\x00" in value:
        return f"{value!r} is a path, not a name"
    if value.startswith("."):
        return f"{value!r} starts with '.'"
    if len(value) > 200:
        return "a name longer than 200 characters"
    return None


def artifact_name(value: str, where: str) -> str:
    """Check a workspace artifact name given on the command line or in a profile.

    Args:
        value: the name (``--name``, ``--run``, ``ensemble.name``).
        where: the option or key, for the message.

    Returns:
        ``value`` unchanged.

    Raises:
        ProfileError: when the name could escape its folder (``../../etc``) or is empty.
    """
    problem = name_problem(value)
    if problem:
        raise ProfileError(f"not a valid artifact name: {problem}", where=where, hint=NAME_HINT)
    return value
