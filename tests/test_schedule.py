"""``lcrag schedule ingest``: option checks in-process, and one end-to-end run against a
real ``prefect server start`` subprocess whose scheduler fires the served deployment.

The server and the command each run in their own process group with an environment
built here (no PREFECT_* variable of this test process leaks into them, and this
process's Prefect settings are never changed); both groups are killed on teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.conftest import ROOT, free_port

PREFECT = Path(sys.executable).parent / "prefect"
SERVER_START_TIMEOUT_S = 180
RUN_COMPLETED_TIMEOUT_S = 240
STOP_TIMEOUT_S = 60
SMALL_CONFIG = "chunking:\n  target_tokens: 24\nunits:\n  max_tokens: 128\n"
DEPLOYMENT = "test-scheduled-ingest"


def clean_env(prefect_home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any Prefect setting, plus the given ones."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ANALYTICS_ENABLED="false", HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1", **extra,
    )
    return env


def start_group(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as sink:
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)


def stop_group(process: subprocess.Popen, first_signal: int = signal.SIGTERM) -> int:
    """Signal the whole process group, then kill it if it has not exited in time."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, first_signal)
            return process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)  # stragglers (flow-run children) of an exited leader too
    except ProcessLookupError:
        pass
    return process.wait()


def tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


# ------------------------------------------------------------ option checks


def schedule_args(source: Path, index: Path, *options: str) -> list[str]:
    return ["schedule", "ingest", str(source), "--index", str(index), *options]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--cron", "61 * * * *"], 'invalid --cron \'61 * * * *\''),
        (["--cron", "every hour"], '"0 * * * *" for hourly'),
        (["--cron", "H * * * *"], "invalid --cron"),
        (["--cron", "0 * * * *", "--every", "60"], "give exactly one of --cron"),
        ([], "give exactly one of --cron"),
        (["--every", "0"], "--every must be a positive number of seconds"),
        (["--every", "60", "--timezone", "Mars/Olympus"], "unknown --timezone 'Mars/Olympus'"),
    ],
)
def test_bad_schedule_options_are_one_line_errors(options, expected, tmp_path):
    from lcrag.app.cli.app import app

    result = CliRunner().invoke(app, schedule_args(tmp_path, tmp_path / "idx", *options))
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert result.output.count("error:") == 1


def test_missing_source_is_reported_before_any_server_is_asked(tmp_path):
    from lcrag.app.cli.app import app

    result = CliRunner().invoke(app, schedule_args(tmp_path / "nowhere", tmp_path / "idx", "--every", "60"))
    assert result.exit_code == 2 and "does not exist" in result.output


@pytest.mark.parametrize(
    ("api_url", "expected"),
    [(None, "no Prefect API is configured"), ("http://127.0.0.1:{port}/api", "does not answer")],
)
@pytest.mark.slow  # an lcrag subprocess importing Prefect
def test_without_a_reachable_server_it_says_how_to_start_one(api_url, expected, tmp_path):
    extra = {"PREFECT_API_URL": api_url.format(port=free_port())} if api_url else {}
    result = subprocess.run(
        [sys.executable, "-m", "lcrag.app.cli.app", *schedule_args(tmp_path, tmp_path / "idx", "--every", "60")],
        env=clean_env(tmp_path / "prefect-home", **extra), cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "prefect server start" in result.stderr and "PREFECT_API_URL" in result.stderr


# ------------------------------------------------------------ a real server


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """`prefect server start` on a free loopback port with its own home, shared by this
    module's tests (each uses its own deployment); yields the API URL."""
    tmp_path = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    log = tmp_path / "prefect-server.log"
    server = start_group(
        [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        clean_env(tmp_path / "prefect-server-home"), log,
    )
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not server_is_healthy(api_url):
            if server.poll() is not None:
                pytest.fail(f"prefect server exited with {server.returncode}:\n{tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after {SERVER_START_TIMEOUT_S} s:\n{tail(log)}")
            time.sleep(1)
        yield api_url
    finally:
        stop_group(server)


def server_is_healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def deployment_runs(api_url: str, deployment: str) -> list[dict]:
    response = httpx.post(
        f"{api_url}/flow_runs/filter",
        json={"deployments": {"name": {"any_": [deployment]}}, "sort": "EXPECTED_START_TIME_ASC", "limit": 200},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def deployment_paused(api_url: str, deployment: str) -> bool:
    response = httpx.post(f"{api_url}/deployments/filter", json={"deployments": {"name": {"any_": [deployment]}}}, timeout=10)
    response.raise_for_status()
    (found,) = response.json()
    return found["paused"]


@pytest.mark.slow  # a Prefect server
def test_scheduled_ingestion_publishes_a_searchable_generation(prefect_server, topic_corpus, tmp_path, encoder):
    from lcrag.pipeline.index.folder import live_name
    from lcrag.pipeline.index.search import IndexReader

    config = tmp_path / "config.yaml"
    config.write_text(SMALL_CONFIG)
    index = tmp_path / "idx"
    log = tmp_path / "schedule.log"
    started = time.monotonic()
    command = start_group(
        [sys.executable, "-m", "lcrag.app.cli.app", *schedule_args(topic_corpus, index, "--every", "5"),
         "--config", str(config), "--name", DEPLOYMENT],
        clean_env(tmp_path / "prefect-client-home", PREFECT_API_URL=prefect_server, PREFECT_LOGGING_LEVEL="INFO"), log,
    )
    try:
        completed = None
        while completed is None:
            if command.poll() is not None:
                pytest.fail(f"lcrag schedule ingest exited with {command.returncode}:\n{tail(log)}")
            if time.monotonic() - started > RUN_COMPLETED_TIMEOUT_S:
                pytest.fail(f"no completed run after {RUN_COMPLETED_TIMEOUT_S} s:\n{tail(log)}")
            runs = deployment_runs(prefect_server, DEPLOYMENT)
            broken = [run for run in runs if run["state_type"] in ("FAILED", "CRASHED")]
            assert not broken, f"{broken[0]['state_name']}: {broken[0]['state']['message']}\n{tail(log)}"
            completed = next((run for run in runs if run["state_type"] == "COMPLETED"), None)
            time.sleep(2)
        print(f"first scheduled run completed {time.monotonic() - started:.0f} s after `lcrag schedule ingest` started")

        assert completed["parameters"] == {
            "source": str(topic_corpus.resolve()), "index": str(index.resolve()), "fmt": "auto",
            "config_file": str(config.resolve()), "name": None, "generations": True,
        }
        output = log.read_text(errors="replace")
        assert f"Prefect API: {prefect_server}" in output and f"deployment: lcrag-ingest/{DEPLOYMENT}" in output
        assert "schedule: every 5 s (UTC)" in output and "next runs: " in output

        assert stop_group(command, signal.SIGINT) == 0, tail(log)  # Ctrl-C: a clean stop
        assert "is paused until it is served again" in log.read_text(errors="replace")
        assert deployment_paused(prefect_server, DEPLOYMENT)
    finally:
        stop_group(command)

    assert live_name(index) is not None
    with IndexReader(index, lambda _: encoder) as corpus:
        hits = corpus.search("lava flows from volcanoes", k=1, level="doc")
        assert hits[0].doc_id == "volcanoes.txt"


def wait_for(condition, what: str, log: Path, timeout_s: float = RUN_COMPLETED_TIMEOUT_S, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not seen after {timeout_s:.0f} s:\n{tail(log)}")
        time.sleep(every_s)
    return found


@pytest.mark.slow  # a Prefect server
def test_a_killed_schedule_is_recovered_by_the_next_one(prefect_server, tmp_path, encoder):
    """SIGKILL mid-run leaves a RUNNING run that holds the deployment's one concurrency
    slot, so every run that comes due is cancelled. The next `lcrag schedule ingest`
    marks it crashed, and its runs complete again; a second one on the same index is refused."""
    from lcrag.pipeline.index.folder import live_name
    from lcrag.pipeline.index.search import IndexReader
    from tests.conftest import TOPICS, write_corpus

    words = " ".join(TOPICS.values()).split()
    corpus = write_corpus(tmp_path / "corpus", {  # enough text that a run lasts long enough to kill it mid-way
        f"doc{n:03d}.txt": " ".join(words[(n * 37 + i) % len(words)] for i in range(400)) for n in range(60)
    } | TOPICS)
    config = tmp_path / "config.yaml"
    config.write_text(SMALL_CONFIG)
    index = tmp_path / "idx"
    deployment = f"{DEPLOYMENT}-killed"
    args = [sys.executable, "-m", "lcrag.app.cli.app", *schedule_args(corpus, index, "--every", "5"),
            "--config", str(config), "--name", deployment]
    env = clean_env(tmp_path / "prefect-client-home", PREFECT_API_URL=prefect_server, PREFECT_LOGGING_LEVEL="INFO")

    def runs_in(*states):
        return [run for run in deployment_runs(prefect_server, deployment) if run["state_type"] in states]

    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_group(args, env, first_log)
    try:
        (orphan,) = wait_for(lambda: runs_in("RUNNING"), "a running run", first_log)
    finally:
        stop_group(first, signal.SIGKILL)
    assert not runs_in("COMPLETED"), "the run finished before it could be killed: make the corpus larger"
    assert [run["id"] for run in runs_in("RUNNING")] == [orphan["id"]]  # nobody will ever finish it
    assert live_name(index) is None

    second = start_group(args, env, second_log)
    try:
        completed = wait_for(lambda: runs_in("COMPLETED"), "a completed run after the restart", second_log)
        crashed = {run["id"]: run for run in runs_in("CRASHED")}
        assert orphan["id"] in crashed and "died mid-run" in crashed[orphan["id"]]["state"]["message"]
        assert f"marked crashed: {orphan['name']}" in second_log.read_text(errors="replace")
        assert completed[0]["expected_start_time"] > orphan["expected_start_time"]

        refused = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and "is serving the ingestion schedule of" in refused.stderr, refused.stderr
    finally:
        stop_group(second)

    assert live_name(index) is not None  # the killed run's generation was resumed and published
    with IndexReader(index, lambda _: encoder) as reader:
        assert reader.manifest.documents == 60 + len(TOPICS)
