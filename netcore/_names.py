"""Looking things up by name, with the closest valid name in the error."""

from __future__ import annotations

import difflib

from netcore.errors import ConfigurationError


def lookup(kind: str, name: str, table: dict):
    """``table[name]`` (case- and dash-insensitive) or a ConfigurationError naming the closest valid choice."""
    key = str(name).strip().lower().replace("-", "_")
    if key in table:
        return table[key]
    close = difflib.get_close_matches(key, list(table), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigurationError(f"unknown {kind} {name!r}{hint} (valid: {', '.join(sorted(table))})")
