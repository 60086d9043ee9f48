"""Reading ``FLEETLOG_*`` variables: deprecated names, unknown names, and what is not a setting.

A typo in a variable name must not be silently ignored: every ``FLEETLOG_*`` variable that is
neither declared nor listed in :data:`NOT_SETTINGS` warns once per process, with the closest
declared name. The unit-less names of the previous release are still read, with a
``DeprecationWarning`` naming the new one; the new name wins when both are set.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping

from fleetlog.config._declare import PREFIX

__all__ = ["NOT_SETTINGS", "ConfigWarning", "read"]

# FLEETLOG_* variables that are not settings: hand-offs fleetlog writes for its own child processes,
# test hooks, and names that are no longer read. Listed so that they never warn as unknown.
NOT_SETTINGS: dict[str, str] = {
    "FLEETLOG_RUN_ID": "set by fleetlog for a submitted script or demo child: the run it logs to",
    "FLEETLOG_SUBMITTED": "set by fleetlog for a submitted script: 1 when Run.get_context() should join that run",
    "FLEETLOG_EXPERIMENT": "set by fleetlog for a submitted script: the experiment of that run",
    "FLEETLOG_PROJECT": "set by fleetlog for a submitted script: the project of that run",
    "FLEETLOG_RUN_NAME": "set by fleetlog for a submitted script: the run's display name",
    "FLEETLOG_RUN_START": "set by fleetlog for a submitted script: the run's start time (Unix seconds)",
    "FLEETLOG_KAFKA_SCRIPT": "test hook and relocated installs: the Kafka start script `fleetlog up` runs",
    "FLEETLOG_SCREENSHOTS": "test hook: folder where `make screenshots` saves the dashboard's screenshots",
    "FLEETLOG_HTTP_PASSWORD": "no longer read (warns): set FLEETLOG_STORE_WRITER_PASSWORD instead",
}

_warned: set[str] = set()


class ConfigWarning(UserWarning):
    """A ``FLEETLOG_*`` variable that fleetlog does not know (probably a typo)."""


def read(environ: Mapping[str, str], current: Mapping[str, str], deprecated: Mapping[str, str]) -> dict[str, str]:
    """The non-empty values of declared variables, keyed by their current name.

    ``current`` maps each declared variable to itself (any value), ``deprecated`` maps an old
    name to its new one.
    """
    values: dict[str, str] = {}
    for name, raw in environ.items():
        if not name.startswith(PREFIX) or raw == "":
            continue
        if name in current:
            values[name] = raw
        elif name in deprecated:
            new = deprecated[name]
            _warn_once(name, f"{name} is deprecated: set {new} instead", DeprecationWarning)
            if not environ.get(new):
                values[new] = raw
        elif name not in NOT_SETTINGS:
            close = difflib.get_close_matches(name, [*current, *NOT_SETTINGS], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else "; see docs/configuration.md"
            _warn_once(name, f"{name} is not a fleetlog setting and is ignored{hint}", ConfigWarning)
    return values


def _warn_once(name: str, message: str, category: type[Warning]) -> None:
    if name not in _warned:
        _warned.add(name)
        warnings.warn(message, category, stacklevel=4)
