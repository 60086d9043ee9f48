"""The model registry's rules every stage shares: model names, and the stream a name's registrations travel on.

A registration is one ``model`` event.  Its envelope's run id is not the registering run's
(that travels in the body) but :func:`model_stream_id` of the model's name, so the Kafka key
is the name: every registration of one name lands on one partition, in order, read by one
sink at a time -- which is what lets the sink number versions 1, 2, 3... exactly once
(:mod:`fleetlog.sinks._models`).  Processors skip these events: they belong to no run.
"""

from __future__ import annotations

import re

__all__ = ["MODEL_KIND", "MODEL_STREAM_PREFIX", "check_model_name", "is_model_stream", "model_stream_id"]

MODEL_KIND = "model"
MODEL_STREAM_PREFIX = "model:"
# Azure ML's rule: letters, digits, '-', '_' and '.', starting with a letter or digit, at most 255 characters.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def check_model_name(name: object) -> str:
    """``name`` if it is a valid model name; else ``ValueError`` saying the rule."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"model name {name!r} is not valid: use 1-255 letters, digits, '-', '_' or '.', starting with a"
            " letter or digit (e.g. 'sklearn-mnist')"
        )
    return name


def model_stream_id(name: str) -> str:
    """The envelope run id (and so the Kafka key) of ``name``'s registrations."""
    return MODEL_STREAM_PREFIX + check_model_name(name)


def is_model_stream(run_id: str) -> bool:
    return run_id.startswith(MODEL_STREAM_PREFIX)
