"""Run artifacts: copied with size and sha256, read back, and paths that escape the run refused."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import agenttrace
from agenttrace.errors import ArtifactPathError, ConfigError, TrackingError
from agenttrace.tracking import runs


@pytest.fixture(autouse=True)
def no_open_runs() -> Iterator[None]:
    runs.forget_active_runs()
    yield
    runs.forget_active_runs()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
    return folder


def test_log_artifact_copies_and_records_size_and_sha256(files: Path, store_path: Path) -> None:
    with agenttrace.start_run() as run:
        assert agenttrace.log_artifact(files / "a.txt") == "a.txt"
        assert agenttrace.log_artifact(files / "sub" / "b.bin", artifact_path="data/raw") == "data/raw/b.bin"
    stored = {a["path"]: a for a in agenttrace.get_run(run.run_id).artifacts}
    content = (files / "sub" / "b.bin").read_bytes()
    assert stored["data/raw/b.bin"]["size_bytes"] == len(content)
    assert stored["data/raw/b.bin"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert stored["a.txt"]["size_bytes"] == 5
    # the default root is next to the store: traces.duckdb -> traces-artifacts/<run_id>/
    assert (store_path.parent / "traces-artifacts" / run.run_id / "data" / "raw" / "b.bin").read_bytes() == content
    got = agenttrace.download_artifacts(run.run_id, "data/raw/b.bin", store_path.parent / "out")
    assert got.read_bytes() == content


def test_log_artifacts_keeps_the_folder_layout_and_downloads_it_whole(files: Path, tmp_path: Path) -> None:
    with agenttrace.start_run() as run:
        logged = agenttrace.log_artifacts(files, artifact_path="inputs")
    assert logged == ["inputs/a.txt", "inputs/sub/b.bin"]
    everything = agenttrace.download_artifacts(run.run_id, "", tmp_path / "all")
    assert (everything / "inputs" / "a.txt").read_text() == "alpha"
    assert (everything / "inputs" / "sub" / "b.bin").read_bytes() == (files / "sub" / "b.bin").read_bytes()


def test_log_dict_text_and_table_round_trip(tmp_path: Path) -> None:
    frame = pd.DataFrame({"question": ["a", "b"], "score": [0.5, 1.0]})
    with agenttrace.start_run() as run:
        agenttrace.log_dict({"model": "m", "layers": [1, 2]}, "config/model.json")
        agenttrace.log_text("hello\n", "notes.txt")
        agenttrace.log_table(frame, "tables/scores.json")
        agenttrace.log_table(frame, "tables/scores.parquet")
        with pytest.raises(TrackingError, match=".json or .parquet"):
            agenttrace.log_table(frame, "scores.csv")
    out = agenttrace.download_artifacts(run.run_id, "", tmp_path / "out")
    import json

    assert json.loads((out / "config" / "model.json").read_text()) == {"model": "m", "layers": [1, 2]}
    assert (out / "notes.txt").read_text() == "hello\n"
    pd.testing.assert_frame_equal(pd.read_json(out / "tables" / "scores.json", orient="split"), frame)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "tables" / "scores.parquet"), frame)


@pytest.mark.parametrize("bad", ["../escape", "a/../../escape", "/etc", "C:/Windows"])
def test_an_artifact_path_that_leaves_the_run_folder_is_refused(files: Path, bad: str) -> None:
    with agenttrace.start_run() as run:
        with pytest.raises(ArtifactPathError):
            agenttrace.log_artifact(files / "a.txt", artifact_path=bad)
        with pytest.raises(ArtifactPathError):
            agenttrace.log_text("x", f"{bad}/x.txt")
        agenttrace.log_text("x", "ok.txt")
    with pytest.raises(ArtifactPathError):
        agenttrace.download_artifacts(run.run_id, bad)
    assert [a["path"] for a in agenttrace.get_run(run.run_id).artifacts] == ["ok.txt"]


def test_a_symlink_out_of_the_run_folder_is_refused(files: Path, tmp_path: Path, store_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with agenttrace.start_run() as run:
        agenttrace.log_text("x", "keep.txt")  # makes the run's folder
        run_folder = store_path.parent / "traces-artifacts" / run.run_id
        os.symlink(outside, run_folder / "link")
        with pytest.raises(ArtifactPathError, match="outside the run's folder"):
            agenttrace.log_artifact(files / "a.txt", artifact_path="link")
    assert list(outside.iterdir()) == []
    with pytest.raises(ArtifactPathError):
        agenttrace.download_artifacts(run.run_id, "link")


def test_a_folder_holding_a_symlink_out_of_it_is_refused_whole(files: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy")
    os.symlink(secret, files / "leak.txt")
    with agenttrace.start_run() as run:
        with pytest.raises(ArtifactPathError, match="symlink"):
            agenttrace.log_artifacts(files)
    assert agenttrace.get_run(run.run_id).artifacts == []


def test_a_changed_artifact_is_caught_at_download(tmp_path: Path, store_path: Path) -> None:
    with agenttrace.start_run() as run:
        agenttrace.log_text("original", "a.txt")
    (store_path.parent / "traces-artifacts" / run.run_id / "a.txt").write_text("tampered")
    with pytest.raises(TrackingError, match="sha256 differs"):
        agenttrace.download_artifacts(run.run_id, "a.txt", tmp_path / "out")


def test_the_artifact_root_is_configurable_and_recorded_per_run(files: Path, tmp_path: Path) -> None:
    agenttrace.configure(artifact_root=(tmp_path / "elsewhere").as_uri())
    with agenttrace.start_run() as run:
        agenttrace.log_artifact(files / "a.txt")
    assert agenttrace.get_run(run.run_id).artifact_uri == (tmp_path / "elsewhere" / run.run_id).as_uri()
    assert (tmp_path / "elsewhere" / run.run_id / "a.txt").read_text() == "alpha"
    agenttrace.configure(artifact_root=str(tmp_path / "moved"))  # earlier runs keep their folder
    assert agenttrace.download_artifacts(run.run_id, "a.txt", tmp_path / "out").read_text() == "alpha"


def test_only_file_artifact_roots_are_served() -> None:
    agenttrace.configure(artifact_root="s3://bucket/prefix")
    with pytest.raises(ConfigError, match="only file://"):
        agenttrace.start_run()
    assert agenttrace.active_run() is None
