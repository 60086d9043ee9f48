"""fleetlog's settings: one object per stage, composed into :class:`Settings`.

Precedence is defaults < environment < explicit arguments, applied in :meth:`Settings.from_env`
and nowhere else::

    settings = Settings.from_env()                        # defaults < FLEETLOG_* variables
    settings = Settings.from_env(sink_batch_seconds=1)    # ... < arguments (flat keyword)
    settings = Settings.from_env(sink={"batch_seconds": 1})  # the same, nested
    settings.sink.batch_seconds                           # read per stage

A flat keyword is the variable's name without ``FLEETLOG_``, in lower case
(``FLEETLOG_SINK_BATCH_SECONDS`` -> ``sink_batch_seconds``). Every object is frozen and
keyword-only, so a stage can hand it to another thread without anyone mutating it underneath.
Each field declares its variable, unit and doc (:mod:`.stages`, :mod:`.processor`, :mod:`.store`);
``docs/configuration.md`` is generated from them (``python -m fleetlog.config --markdown``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetlog.config import _env
from fleetlog.config._declare import StageConfig, parse, setting, settings_of, var_of
from fleetlog.config._env import NOT_SETTINGS, ConfigWarning
from fleetlog.config._net import is_loopback, mask_url
from fleetlog.config.processor import DEFAULT_RANK_METRICS, ProcessorConfig
from fleetlog.config.stages import BUFFER_WHEN_FULL, KafkaConfig, SdkConfig, SinkConfig, TopicConfig, UiConfig
from fleetlog.config.store import StoreConfig
from fleetlog.errors import ConfigError

__all__ = [
    "BUFFER_WHEN_FULL",
    "DEFAULT_RANK_METRICS",
    "NOT_SETTINGS",
    "SECRET_SETTINGS",
    "ConfigError",
    "ConfigWarning",
    "KafkaConfig",
    "ProcessorConfig",
    "SdkConfig",
    "Settings",
    "SinkConfig",
    "StoreConfig",
    "TopicConfig",
    "UiConfig",
    "declared",
    "is_loopback",
    "mask_url",
]


def _default_home() -> Path:
    return Path.home() / ".fleetlog"


# group attribute of Settings -> its config class, in the order docs/configuration.md shows them
GROUPS: dict[str, type[StageConfig]] = {
    "kafka": KafkaConfig,
    "topics": TopicConfig,
    "sdk": SdkConfig,
    "processor": ProcessorConfig,
    "sink": SinkConfig,
    "store": StoreConfig,
    "ui": UiConfig,
}


@dataclass(frozen=True, kw_only=True, repr=False)
class Settings(StageConfig):
    """Where things live and how stages reach each other: ``home`` plus one config per stage."""

    home: Path = setting(  # noqa: RUF009 -- a declared field, like dataclasses.field
        env="FLEETLOG_HOME",
        factory=_default_home,
        shown_default="~/.fleetlog",
        doc="state directory: store, spool, broker data, logs, credentials",
    )
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    topics: TopicConfig = field(default_factory=TopicConfig)
    sdk: SdkConfig = field(default_factory=SdkConfig)
    processor: ProcessorConfig = field(default_factory=ProcessorConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    ui: UiConfig = field(default_factory=UiConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, cls in GROUPS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"Settings.{name} must be a {cls.__name__}, not {getattr(self, name)!r}")
        if not self.store.url:
            object.__setattr__(self, "store", dataclasses.replace(self.store, url=f"chdb://{self.home / 'store'}"))
        if not self.sdk.artifacts_url:
            artifacts = (self.home / "artifacts").as_uri()
            object.__setattr__(self, "sdk", dataclasses.replace(self.sdk, artifacts_url=artifacts))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults < ``FLEETLOG_*`` variables of ``environ`` (default ``os.environ``) < ``overrides``.

        ``overrides`` are flat keywords (``sink_batch_seconds=1``) or one per group
        (``sink={"batch_seconds": 1}`` or ``sink=SinkConfig(...)``, which replaces the whole group).
        Unknown names raise ``TypeError``, as a mistyped argument does anywhere; ``None`` means
        "not given" so CLI flags can be passed straight through.
        """
        env = os.environ if environ is None else environ
        index = declared()
        by_env = {var.env: key for key, (_, f) in index.items() for var in [var_of(f)]}
        deprecated = {var_of(f).old_env: var_of(f).env for _, f in index.values() if var_of(f).old_env}
        values = {
            by_env[name]: parse(index[by_env[name]][1], raw) for name, raw in _env.read(env, by_env, deprecated).items()
        }
        return cls._assemble(values, overrides)

    @classmethod
    def build(cls, **overrides: Any) -> Settings:
        """Defaults < ``overrides``, the environment left unread: for tests and benchmarks."""
        return cls.from_env({}, **overrides)

    def replace(self, **overrides: Any) -> Settings:
        """A copy with ``overrides`` (flat or per group, as :meth:`from_env` takes them) applied."""
        values = {
            key: getattr(self if group is None else getattr(self, group), f.name)
            for key, (group, f) in declared().items()
        }
        return self._assemble(values, overrides)

    @classmethod
    def _assemble(cls, values: dict[str, Any], overrides: Mapping[str, Any]) -> Settings:
        """Settings from flat ``values`` with ``overrides`` on top: the one place precedence is applied."""
        index, whole = declared(), _apply(values, overrides)
        kwargs: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
        top: dict[str, Any] = {}
        for key, value in values.items():
            group, f = index[key]
            (top if group is None else kwargs[group])[f.name] = value
        groups = {group: whole.get(group) or GROUPS[group](**kwargs[group]) for group in GROUPS}
        return cls(**top, **groups)

    # Topic names live here so that producer, processor and sink can never disagree.
    @property
    def metrics_topic(self) -> str:
        return f"{self.topics.prefix}.metrics"

    @property
    def events_topic(self) -> str:
        return f"{self.topics.prefix}.events"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topics.prefix}.dead-letters"

    @property
    def derived_topic(self) -> str:
        """Rows the stream processors derive (rollups, summaries, alerts...), for the sink."""
        return f"{self.topics.prefix}.derived"

    @property
    def alerts_topic(self) -> str:
        """Alerts the stream processors raise, as rows for the ``alerts`` table (subscribe to be notified)."""
        return f"{self.topics.prefix}.alerts"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    def to_env(self) -> dict[str, str]:
        """Every setting as the ``FLEETLOG_*`` variable a child process reads it from (secrets too)."""
        return {
            var_of(f).env: str(getattr(self if group is None else getattr(self, group), f.name))
            for group, f in declared().values()
        }

    def child_env(self, *, secrets: Iterable[str] = (), base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment a fleetlog child process reads these settings from.

        ``base`` (default ``os.environ``) plus every ``FLEETLOG_*`` setting, except the secrets
        (:data:`SECRET_SETTINGS`, named by flat keyword) not named in ``secrets``: those are left
        out, and removed from ``base`` too, so a child holds only the secrets its job needs.
        Deprecated names are dropped from ``base``: the child reads the current ones.
        """
        keep = set(secrets)
        if keep - SECRET_SETTINGS:
            raise ValueError(f"not secret settings: {sorted(keep - SECRET_SETTINGS)}")
        index = declared()
        dropped = {var_of(index[key][1]).env for key in SECRET_SETTINGS - keep}
        dropped |= {var_of(f).old_env for _, f in index.values() if var_of(f).old_env}
        env = {k: v for k, v in (os.environ if base is None else base).items() if k not in dropped}
        env.update({k: v for k, v in self.to_env().items() if k not in dropped})
        return env

    def __repr__(self) -> str:
        """Never shows secrets: passwords in URLs, the store's and SASL's passwords and the UI token."""
        groups = ", ".join(f"{name}={getattr(self, name)!r}" for name in GROUPS)
        return f"Settings(home={str(self.home)!r}, {groups})"


def declared() -> dict[str, tuple[str | None, dataclasses.Field[Any]]]:
    """Every declared setting by flat keyword: (its group in :class:`Settings`, or None for top level; its field)."""
    index: dict[str, tuple[str | None, dataclasses.Field[Any]]] = {
        var_of(f).keyword: (None, f) for f in settings_of(Settings)
    }
    for group, cls in GROUPS.items():
        index.update({var_of(f).keyword: (group, f) for f in settings_of(cls)})
    return index


def _apply(values: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, StageConfig]:
    """Write ``overrides`` into the flat ``values``; return the groups given whole (they win entirely)."""
    index, whole = declared(), {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in GROUPS and isinstance(value, GROUPS[key]):
            whole[key] = value
        elif key in GROUPS and isinstance(value, Mapping):
            names = {f.name: var_of(f).keyword for f in settings_of(GROUPS[key])}
            for name, item in value.items():
                if name not in names:
                    raise TypeError(f"unknown setting {key}.{name}; known: {sorted(names)}")
                if item is not None:
                    values[names[name]] = item
        elif key in GROUPS:
            raise TypeError(f"{key}= takes a {GROUPS[key].__name__} or a mapping of its fields, not {value!r}")
        elif key in index:
            values[key] = value
        else:
            raise TypeError(f"unknown setting {key!r}; known settings: {sorted(index)} and groups {list(GROUPS)}")
    return whole


# Settings that are secrets (by flat keyword): masked in repr, and passed to a child process only when it needs them.
SECRET_SETTINGS = frozenset(key for key, (_, f) in declared().items() if var_of(f).secret)
