"""``register_model`` before the sink: argument errors, the files copied at the call, the event keyed by name."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

import fleetlog
from fleetlog.config import Settings
from fleetlog.events.models import model_stream_id
from fleetlog.models import ModelRegistrationPending


class Recording(collections.deque):
    """A stream's event queue that remembers every event put in it."""

    def __init__(self) -> None:
        super().__init__()
        self.appended: list = []

    def append(self, item) -> None:
        self.appended.append(item)
        super().append(item)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[fleetlog.Run]:
    settings = Settings.build(home=tmp_path / "home", mode="offline", outputs_dir="", telemetry_interval_seconds=0)
    exp = fleetlog.Experiment("models", settings=settings)
    with exp.start_logging() as r:
        yield r
    exp.close()


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("bad name", "x"), {}, ValueError, "model name 'bad name' is not valid"),
        (("ok", "does/not/exist.pkl"), {}, FileNotFoundError, "no file or folder"),
        (("ok", "FILE"), {"tags": ["a"]}, TypeError, "tags must be a mapping"),
        (("ok", "FILE"), {"properties": {"": 1}}, TypeError, "non-empty str keys"),
        (("ok", "FILE"), {"description": 3}, TypeError, "description must be a str"),
    ],
)
def test_bad_arguments_raise_before_anything_is_sent(run, tmp_path, args, kwargs, error, match) -> None:
    (tmp_path / "f.bin").write_bytes(b"x")
    run._stream.events = sent = Recording()
    args = tuple(str(tmp_path / "f.bin") if a == "FILE" else a for a in args)
    with pytest.raises(error, match=match):
        run.register_model(*args, **kwargs)
    assert all(e.kind != "model" for e in sent.appended)


def test_an_offline_registration_copies_the_files_and_says_it_has_no_version_yet(run, tmp_path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "w.bin").write_bytes(b"weights")
    (model / "sub" / "c.json").write_text("{}")
    run._stream.events = sent = Recording()  # the sender thread drains the queue: keep what went in
    with pytest.raises(ModelRegistrationPending, match="fleetlog sync") as caught:
        run.register_model("clf", model, tags={"k": 1, "flag": None})
    [event] = [e for e in sent.appended if e.kind == "model"]
    assert event.run_id == model_stream_id("clf") and event.key == b"model:clf"
    body = event.body
    assert body["registration_id"] == caught.value.registration_id and body["run_id"] == run.id
    assert body["tags"] == {"k": "1", "flag": ""} and body["size"] == len(b"weights") + 2
    fs, root = fsspec.core.url_to_fs(body["url"])
    assert fs.cat_file(f"{root}/model/w.bin") == b"weights" and fs.exists(f"{root}/model/sub/c.json")
