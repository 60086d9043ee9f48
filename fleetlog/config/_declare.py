"""How a setting is declared: its field carries its variable, unit and doc, and checks itself.

A stage's configuration is a frozen, keyword-only dataclass built from :func:`setting`
fields; :class:`StageConfig` validates every field against its declaration, so a bad
value fails at construction with a :class:`~fleetlog.errors.ConfigError` that names the
``FLEETLOG_*`` variable and says what is allowed -- whether it came from the environment,
a CLI flag or a keyword argument.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetlog.errors import ConfigError

__all__ = ["PREFIX", "StageConfig", "Var", "parse", "setting", "settings_of", "var_of"]

PREFIX = "FLEETLOG_"

# Units that must end the variable's name, so that nobody has to guess what `30` means.
NAMED_UNITS = ("seconds", "bytes", "points", "days")


@dataclass(frozen=True)
class Var:
    """The declaration of one setting."""

    env: str
    doc: str
    unit: str = ""
    old_env: str = ""  # the unit-less name of the previous release: still read, with a DeprecationWarning
    secret: bool = False  # masked in repr; passed to a child process only when its job needs it
    choices: tuple[str, ...] = ()
    positive: bool = False  # a number that must be > 0 (every number must be >= 0)
    shown_default: str = ""  # the default as docs/configuration.md shows it, when computed

    @property
    def keyword(self) -> str:
        """The flat override keyword: the variable's name without the prefix, in lower case."""
        return self.env.removeprefix(PREFIX).lower()


def setting(
    default: Any = dataclasses.MISSING,
    *,
    env: str,
    doc: str,
    factory: Callable[[], Any] | None = None,
    **declaration: Any,
) -> Any:
    """A dataclass field that declares its variable, unit and doc (see :class:`Var`)."""
    meta = {"setting": Var(env=env, doc=doc, **declaration)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def var_of(f: dataclasses.Field[Any]) -> Var:
    return f.metadata["setting"]


def settings_of(cls: type) -> list[dataclasses.Field[Any]]:
    """The declared setting fields of a config class (groups are not settings)."""
    return [f for f in dataclasses.fields(cls) if "setting" in f.metadata]


def _kind(f: dataclasses.Field[Any]) -> str:
    return str(f.type).split("|")[0].strip()


def parse(f: dataclasses.Field[Any], raw: str) -> Any:
    """Turn an environment string into the field's type; ConfigError when it cannot be one."""
    var, kind = var_of(f), _kind(f)
    try:
        if kind == "int":
            number = float(raw)
            if not number.is_integer():
                raise ValueError(raw)
            return int(number)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ConfigError(f"{var.env}={raw!r} is not a number: it must be {_allowed(f)}") from None
    if kind == "Path":
        return Path(raw)
    return raw


def _allowed(f: dataclasses.Field[Any]) -> str:
    var, kind = var_of(f), _kind(f)
    if var.choices:
        return "one of " + ", ".join(var.choices)
    unit = f" of {var.unit}" if var.unit else ""
    sign = "positive" if var.positive else "non-negative"
    if kind == "int":
        return f"{sign} (a whole number{unit})"
    if kind == "float":
        return f"{sign} (a finite number{unit})"
    return "a path" if kind == "Path" else "a string"


def _check(f: dataclasses.Field[Any], value: Any) -> Any:
    """``value`` as the field's type, or ConfigError naming the variable and what is allowed."""
    var, kind = var_of(f), _kind(f)
    ok = True
    if kind in ("int", "float"):
        number_type = int if kind == "int" else (int, float)
        ok = isinstance(value, number_type) and not isinstance(value, bool)
        if ok:
            value = float(value) if kind == "float" else value
            ok = (value > 0 if var.positive else value >= 0) and value < float("inf")
    elif kind == "Path":
        ok = isinstance(value, (str, Path))
        value = Path(value).expanduser() if ok else value
    else:
        ok = isinstance(value, str) and (not var.choices or value in var.choices)
    if not ok:
        raise ConfigError(f"{var.env}={value!r} is not allowed: it must be {_allowed(f)}")
    return value


class StageConfig:
    """Base of the per-stage configs: validates every declared field when built."""

    def __post_init__(self) -> None:
        for f in settings_of(type(self)):
            object.__setattr__(self, f.name, _check(f, getattr(self, f.name)))

    def __repr__(self) -> str:
        """Never shows a secret, nor the password inside a URL."""
        from fleetlog.config._net import mask_url

        parts = []
        for f in settings_of(type(self)):
            value = getattr(self, f.name)
            if var_of(f).secret and value:
                value = "***"
            elif isinstance(value, str) and "://" in value:
                value = mask_url(value)
            parts.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"
