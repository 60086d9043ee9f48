"""The spool's framing and bounds, and how ranks of one job agree on a run id."""

from __future__ import annotations

import pytest
from fleetlog.producers._spool import Frame, Spool, read_segment, spooled_sessions
from fleetlog.producers.experiment import job_run_id, process_source


def test_spool_round_trips_frames_in_order_and_ignores_a_torn_tail(tmp_path):
    spool = Spool(tmp_path / "s1", max_bytes=1 << 20)
    frames = [Frame("t", f"k{i}".encode(), bytes([i]) * 100, i) for i in range(10)]
    assert spool.append(frames[:5]) == 0 and spool.append(frames[5:]) == 0
    [(path, got)] = list(spool.segments())
    assert got == frames
    with open(path, "ab") as fh:
        fh.write(b"\x50\x00\x00\x00partial")  # a frame cut short by a crash
    assert read_segment(path) == frames
    assert spooled_sessions(tmp_path) == [tmp_path / "s1"]
    spool.release()


def test_a_full_spool_drops_the_newest_and_counts_them(tmp_path, caplog):
    spool = Spool(tmp_path / "s", max_bytes=1000)
    dropped = spool.append([Frame("t", b"k", b"x" * 300) for _ in range(5)])
    assert dropped == 2 and spool.dropped == 2 and "spool full" in caplog.text
    assert len(next(spool.segments())[1]) == 3


def test_a_locked_spool_is_not_taken_by_another_owner(tmp_path):
    first, second = Spool(tmp_path / "s", max_bytes=1000), Spool(tmp_path / "s", max_bytes=1000)
    assert first.lock(wait=False)
    assert not second.lock(wait=False)  # flock is per open file description: a second owner is refused
    first.release()
    assert second.lock(wait=False)
    second.release()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FLEETLOG_RUN_ID": "mine", "TORCHELASTIC_RUN_ID": "x"}, "mine"),
        ({"TORCHELASTIC_RUN_ID": "abc123"}, "torchelastic-abc123"),
        ({"TORCHELASTIC_RUN_ID": "none"}, None),
        ({"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "3"}, "slurm-42.3"),
        ({}, None),
    ],
)
def test_ranks_of_one_job_derive_the_same_run_id(monkeypatch, env, expected):
    for var in ("FLEETLOG_RUN_ID", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "SLURM_STEP_ID"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert job_run_id() == expected


def test_rank_and_world_size_come_from_the_launcher(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    src = process_source()
    assert (src.rank, src.world_size) == (3, 8)
    monkeypatch.setenv("RANK", "1")
    assert process_source().rank == 1
