"""Run folders in S3: a run's mirror pulled from and pushed to the run bucket (the local moto server)."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest
from pydantic import ValidationError

from tasks.kernel.paths import RunPaths
from tasks.kernel.runstore import durable_name, open_run_folder, pull_adhoc_plans, run_folder
from tasks.kernel.settings import Settings
from tests.conftest import REGION

AS_OF = date(2024, 6, 1)
BUCKET = "runs"


@pytest.fixture
def s3(aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A run bucket without default encryption (so an object is encrypted only if its upload asks) and its own TMPDIR."""
    _worker(monkeypatch, tmp_path / "tmp")
    client: Any = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return client


def _worker(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    """Be a worker whose temporary folder is ``tmp`` (tempfile caches the folder: forget it)."""
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)


def _settings() -> Settings:
    return Settings(output_dir=f"s3://{BUCKET}/shop/runs")


def _keys(s3: Any) -> dict[str, bytes]:
    found = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in found}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_an_s3_output_is_kept_as_a_uri_and_runs_work_in_a_mirror_under_the_temporary_folder(
    s3: Any, tmp_path: Path
) -> None:
    settings = _settings()

    assert settings.output_s3 == "s3://runs/shop/runs"
    assert settings.output_dir == (tmp_path / "tmp").resolve() / "loyalty-runs" / "runs" / "shop" / "runs"


@pytest.mark.parametrize("uri", ["s3://", "s3:///prefix", "s3://runs/../elsewhere"])
def test_an_output_that_names_no_bucket_or_climbs_out_of_its_mirror_is_refused(uri: str) -> None:
    with pytest.raises(ValidationError, match="not an S3 location"):
        Settings(output_dir=uri)


def test_a_day_s3_does_not_have_opens_as_an_empty_folder(s3: Any) -> None:
    paths = RunPaths.for_day(_settings().output_dir, AS_OF)

    folder = open_run_folder(paths, _settings())

    assert folder.remote == "s3://runs/shop/runs/2024-06-01/"
    assert folder.pull() == 0
    assert not paths.root.exists() or list(paths.root.rglob("*")) == []


def test_a_pushed_folder_comes_back_whole_on_a_fresh_worker_nested_folders_included(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings()
    paths = RunPaths.for_day(settings.output_dir, AS_OF)
    with run_folder(paths, settings):
        _write(paths.plan, "plan")
        _write(paths.outbox / "ab" / "key.eml", "message")
        _write(paths.earlier / "1" / "summary.json", "{}")
        paths.summary.write_text('{"sent": 1}')

    # a replaced worker: another temporary folder, nothing on its disk
    _worker(monkeypatch, tmp_path / "other")
    settings = _settings()
    paths = RunPaths.for_day(settings.output_dir, AS_OF)
    open_run_folder(paths, settings)

    assert paths.plan.read_text() == "plan"
    assert (paths.outbox / "ab" / "key.eml").read_text() == "message"
    assert (paths.earlier / "1" / "summary.json").read_text() == "{}"
    assert paths.summary.read_text() == '{"sent": 1}'
    assert sorted(_keys(s3)) == [
        "shop/runs/2024-06-01/earlier/1/summary.json",
        "shop/runs/2024-06-01/outbox/ab/key.eml",
        "shop/runs/2024-06-01/plan/plan.parquet",
        "shop/runs/2024-06-01/summary.json",
    ]


def test_leaving_the_folder_leaves_no_customer_data_in_the_mirror(s3: Any) -> None:
    settings = _settings()
    paths = RunPaths.for_day(settings.output_dir, AS_OF)

    with run_folder(paths, settings):
        _write(paths.plan, "plan")

    assert not paths.plan.exists()
    assert "shop/runs/2024-06-01/plan/plan.parquet" in _keys(s3)


def test_a_push_uploads_only_what_changed_and_deletes_what_moved_away(s3: Any) -> None:
    settings = _settings()
    paths = RunPaths.for_day(settings.output_dir, AS_OF)
    folder = open_run_folder(paths, settings)
    _write(paths.plan, "plan")
    paths.summary.write_text("one")
    assert folder.push() == 2

    paths.summary.write_text("two, longer")
    (paths.root / "quarantine.csv").write_text("bad rows")
    assert folder.push() == 2  # the summary and the new file; the plan did not change
    assert folder.push() == 0

    paths.reset()  # a new run of the day: the plan moves to earlier/1/
    folder.push()

    assert sorted(_keys(s3)) == [
        "shop/runs/2024-06-01/earlier/1/plan/plan.parquet",
        "shop/runs/2024-06-01/earlier/1/quarantine.csv",
        "shop/runs/2024-06-01/earlier/1/summary.json",
    ]


def test_every_upload_asks_for_server_side_encryption(s3: Any) -> None:
    settings = _settings()
    paths = RunPaths.for_day(settings.output_dir, AS_OF)
    with run_folder(paths, settings):
        _write(paths.plan, "plan")

    head = s3.head_object(Bucket=BUCKET, Key="shop/runs/2024-06-01/plan/plan.parquet")
    assert head["ServerSideEncryption"] == "AES256"


def test_a_push_never_deletes_what_another_worker_pushed_since(s3: Any) -> None:
    settings = _settings()
    paths = RunPaths.for_day(settings.output_dir, AS_OF)
    folder = open_run_folder(paths, settings)
    s3.put_object(Bucket=BUCKET, Key="shop/runs/2024-06-01/delivery/outcomes-00002.parquet", Body=b"theirs")
    _write(paths.delivery_shard(1), "mine")

    folder.push()

    assert sorted(_keys(s3)) == [
        "shop/runs/2024-06-01/delivery/outcomes-00001.parquet",
        "shop/runs/2024-06-01/delivery/outcomes-00002.parquet",
    ]


def test_a_pull_drops_what_a_crashed_run_left_only_in_the_mirror(s3: Any) -> None:
    settings = _settings()
    paths = RunPaths.for_day(settings.output_dir, AS_OF)
    s3.put_object(Bucket=BUCKET, Key="shop/runs/2024-06-01/plan/plan.parquet", Body=b"pushed")
    _write(paths.rendered_shard(1), "never pushed")

    open_run_folder(paths, settings)

    assert not paths.rendered_shard(1).exists()
    assert paths.plan.read_text() == "pushed"


def test_the_budget_gets_the_ad_hoc_plans_of_the_days_around_the_run(s3: Any) -> None:
    settings = _settings()
    for day in ("2024-06-01", "2024-05-20", "2024-03-01"):
        s3.put_object(Bucket=BUCKET, Key=f"shop/runs/adhoc/sale/{day}/plan/plan.parquet", Body=day.encode())
    s3.put_object(Bucket=BUCKET, Key="shop/runs/adhoc/sale/2024-06-01/plan/send-00001.parquet", Body=b"shard")

    assert pull_adhoc_plans(settings, AS_OF) == 2

    adhoc = settings.output_dir / "adhoc" / "sale"
    assert sorted(str(p.relative_to(adhoc)) for p in adhoc.rglob("*") if p.is_file()) == [
        "2024-05-20/plan/plan.parquet",
        "2024-06-01/plan/plan.parquet",
    ]


def test_a_plan_is_known_by_the_same_name_on_every_worker(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = durable_name(RunPaths.for_day(_settings().output_dir, AS_OF).plan)
    _worker(monkeypatch, tmp_path / "other")

    second = durable_name(RunPaths.for_day(_settings().output_dir, AS_OF).plan)

    assert first == second == "s3://runs/shop/runs/2024-06-01/plan/plan.parquet"
    assert durable_name(tmp_path / "out" / "plan.parquet") == str((tmp_path / "out" / "plan.parquet").resolve())


def test_a_local_output_folder_is_left_as_it_is(tmp_path: Path) -> None:
    settings = Settings(output_dir=tmp_path / "out")
    paths = RunPaths.for_day(settings.output_dir, AS_OF)

    with run_folder(paths, settings) as folder:
        _write(paths.plan, "plan")
        assert folder.push() == 0

    assert folder.remote is None and paths.plan.read_text() == "plan"
    assert [p.name for p in paths.root.iterdir()] == ["plan"]


def test_a_partial_pull_brings_only_the_named_files_and_leaves_the_rest_of_the_mirror(s3: Any) -> None:
    settings = _settings()
    paths = RunPaths.for_day(settings.output_dir, AS_OF)
    # this wave's host holds the plan and its own wave record
    this = open_run_folder(paths, settings)
    _write(paths.root / "plan" / "send-00000.parquet", "plan")
    _write(paths.root / "delivery" / "waves" / "0600.json", "this wave")
    this.push()
    # meanwhile another wave's host reported its record and the day's summary
    s3.put_object(Bucket=BUCKET, Key="shop/runs/2024-06-01/delivery/waves/0900.json", Body=b"other wave")
    s3.put_object(Bucket=BUCKET, Key="shop/runs/2024-06-01/summary.json", Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key="shop/runs/2024-06-01/render/rendered-00000.parquet", Body=b"big")

    assert this.pull(("delivery/", "summary.json")) == 3

    assert (paths.root / "delivery" / "waves" / "0900.json").read_text() == "other wave"
    assert (paths.root / "summary.json").exists()
    assert not (paths.root / "render").exists()  # not asked for: not downloaded
    assert (paths.root / "plan" / "send-00000.parquet").read_text() == "plan"
    assert this.push() == 0  # nothing pulled counts as changed, nothing of the rest is deleted in S3
    assert "shop/runs/2024-06-01/render/rendered-00000.parquet" in _keys(s3)
