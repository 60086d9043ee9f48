"""The processors' arithmetic over whole decoded batches: numpy only, no Faust, no I/O.

``RunEngine`` is the entry point: a run's messages of one batch in, derived rows
and state writes out.  The modules below it each own one computation:
``aggregate`` (the envelope monoid), ``rollup``, ``alerts``, ``ranks``,
``windows``, ``lifecycle`` (status, rules, run summary); ``state`` and ``codec``
keep what must survive between batches.
"""

from fleetlog.processors.core.aggregate import Aggregate, reduce
from fleetlog.processors.core.config import ProcessorConfig
from fleetlog.processors.core.engine import Output, RunEngine

__all__ = ["Aggregate", "Output", "ProcessorConfig", "RunEngine", "reduce"]
