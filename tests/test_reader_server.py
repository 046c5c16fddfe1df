"""The local vLLM reader server: command and environment building, start-up refusals,
stale state, and (marked ``reader``) a real server answering a real chat completion.

The real-server test needs ``scripts/setup_reader.sh`` to have run (reader virtualenv
and the converted SmolLM2 folder); without them it is skipped with the reason."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lcrag.app.cli.reader import reader_app
from lcrag.pipeline.config import ReaderConfig
from lcrag.readers.server import (
    ReaderServer,
    ReaderServerError,
    cpu_flags,
    kv_cache_tokens,
    log_tail,
    read_log,
    server_command,
    server_dtype,
    server_env,
    start_failure_cause,
)
from tests.conftest import STATE, fast_reader_config, free_port


def port_is_free(port: int) -> bool:
    """Nothing listens, and a new server could bind it (SO_REUSEADDR, as servers do:
    the closed connections' TIME_WAIT entries do not count)."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def fake_install(root: Path, python_script: str | None = None) -> ReaderConfig:
    """A project root with a reader 'virtualenv' whose python is a shell script, and a model folder."""
    python = root / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(python_script or "#!/bin/sh\nexit 0\n")
    python.chmod(0o755)
    model = root / "models" / "m"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    return ReaderConfig(venv="venv", model_dir="models/m", port=free_port(), startup_timeout_s=30)


# --------------------------------------------------------------------------- pure


@pytest.mark.parametrize(
    "overrides, expected_tail",
    [
        ({"dtype": "bfloat16"},
         ["--host", "127.0.0.1", "--port", "8431", "--enforce-eager", "--dtype", "bfloat16", "--max-model-len", "8192",
          "--enable-prefix-caching", "--enable-prompt-tokens-details"]),
        (
            {"host": "0.0.0.0", "port": 9000, "max_model_len": 4096, "dtype": "float32"},
            ["--host", "0.0.0.0", "--port", "9000", "--enforce-eager", "--dtype", "float32", "--max-model-len", "4096",
             "--enable-prefix-caching", "--enable-prompt-tokens-details"],
        ),
    ],
)
def test_server_command(overrides, expected_tail, monkeypatch):
    monkeypatch.delenv("LCRAG_READER_API_KEY", raising=False)
    config = fast_reader_config(**overrides)
    command = server_command(config, Path("/proj"))
    assert command[:3] == ["/proj/reader-venv/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert command[3:7] == ["--model", "/proj/models/smollm2-135m-instruct", "--served-model-name", "smollm2-135m-instruct"]
    assert command[7:] == expected_tail
    assert "--api-key" not in command


@pytest.mark.parametrize(
    "configured, flags, expected",
    [
        ("auto", {"avx2", "avx512f", "avx512_bf16"}, "bfloat16"),
        ("auto", {"avx2", "amx_bf16", "amx_tile"}, "bfloat16"),
        ("auto", {"avx2", "fma"}, "float32"),  # AVX2 only: bfloat16 would be emulated
        ("auto", {"avx2", "avx512f"}, "float32"),  # AVX-512 without its BF16 extension
        ("auto", set(), "float32"),  # flags unknown
        ("bfloat16", {"avx2"}, "bfloat16"),  # an explicit choice is kept
        ("float16", {"avx512_bf16"}, "float16"),
    ],
)
def test_server_dtype(configured, flags, expected):
    assert server_dtype(configured, frozenset(flags)) == expected


def test_cpu_flags_reads_the_first_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_reader_dtype_is_validated():
    with pytest.raises(ValueError, match=r"reader.dtype"):
        ReaderConfig(dtype="int8")


def test_server_command_absolute_paths_and_api_key(monkeypatch):
    monkeypatch.setenv("MY_READER_KEY", "s3cret")
    config = ReaderConfig(venv="/opt/rv", model_dir="/data/qwen", model="qwen", api_key_env="MY_READER_KEY")
    command = server_command(config, Path("/proj"))
    assert command[0] == "/opt/rv/bin/python"
    assert command[command.index("--model") + 1] == "/data/qwen"
    assert command[command.index("--served-model-name") + 1] == "qwen"
    assert command[-2:] == ["--api-key", "s3cret"]
    monkeypatch.setenv("MY_READER_KEY", "")
    assert "--api-key" not in server_command(config, Path("/proj"))


@pytest.mark.parametrize(
    "cpus, threads, bind",
    [([0, 1], "2", "0-1"), ([0, 1, 2, 3], "2", "0-1"), ([0], "1", "all"), ([5, 2], "2", "2,5"), ([3, 4], "2", "3-4")],
)
def test_server_env(cpus, threads, bind):
    env = server_env(ReaderConfig(kv_cache_gib=3), cpus=cpus)
    assert env["OMP_NUM_THREADS"] == threads
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == bind
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3"
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    # a slow step on a loaded machine must not kill the engine at vLLM's 300 s default
    assert int(env["VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS"]) > 300


def test_server_env_defaults_to_this_machine():
    env = server_env(ReaderConfig())
    cores = sorted(os.sched_getaffinity(0))
    expected = "all" if len(cores) < 2 else env["VLLM_CPU_OMP_THREADS_BIND"]
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == expected and expected.startswith("all" if len(cores) < 2 else str(cores[0]))
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"


def test_missing_venv_names_the_setup_script(tmp_path):
    server = ReaderServer(ReaderConfig(venv="nowhere", port=free_port()), home=tmp_path, state_dir=tmp_path / "s")
    with pytest.raises(ReaderServerError, match=r"virtualenv .*nowhere is missing; run scripts/setup_reader.sh"):
        server.start()
    assert not (tmp_path / "s" / "server.pid").exists()


def test_missing_model_names_the_setup_script(tmp_path):
    config = fake_install(tmp_path)
    config = ReaderConfig(venv=config.venv, model_dir="models/absent", port=config.port)
    server = ReaderServer(config, home=tmp_path, state_dir=tmp_path / "s")
    with pytest.raises(ReaderServerError, match=r"model folder .*absent is missing; run scripts/setup_reader.sh"):
        server.start()


def test_port_taken_by_another_program(tmp_path):
    config = fake_install(tmp_path)
    with socket.socket() as other:
        other.bind(("127.0.0.1", config.port))
        other.listen()
        server = ReaderServer(config, home=tmp_path, state_dir=tmp_path / "s")
        with pytest.raises(ReaderServerError, match=rf"port {config.port} .* already in use .*reader.port"):
            server.start()


def test_status_when_not_running(tmp_path):
    server = ReaderServer(fast_reader_config(port=18999), home=tmp_path, state_dir=tmp_path / "s")
    status = server.status()
    assert (status.running, status.pid, status.ready) == (False, None, False)
    assert status.url == "http://127.0.0.1:18999/v1" and status.model == "smollm2-135m-instruct"
    assert status.message == "not running"
    assert status.log_path == tmp_path / "s" / "server.log"
    assert json.loads(json.dumps(status.to_dict()))["log_path"].endswith("server.log")
    assert server.stop() is False


@pytest.mark.parametrize("kind", ["dead", "not-vllm", "garbage"])
def test_stale_pid_file_is_removed(tmp_path, kind):
    state = tmp_path / "s"
    state.mkdir()
    pid_file = state / "server.pid"
    if kind == "dead":
        finished = subprocess.Popen([sys.executable, "-c", "pass"])
        finished.wait()
        pid_file.write_text(json.dumps({"pid": finished.pid, "port": 8431, "model": "smollm2-135m-instruct"}))
    elif kind == "not-vllm":  # a live process that is not a vLLM server (a reused pid)
        pid_file.write_text(json.dumps({"pid": os.getpid(), "port": 8431, "model": "smollm2-135m-instruct"}))
    else:
        pid_file.write_text("not json")
    server = ReaderServer(fast_reader_config(), home=tmp_path, state_dir=state)
    status = server.status()
    assert not status.running and not status.ready and status.pid is None
    if kind != "garbage":
        assert "stale pid file" in status.message
    assert not pid_file.exists()
    assert server.stop() is False


@pytest.mark.parametrize("same_start, running", [(True, True), (False, False)])
def test_a_server_not_yet_exec_d_is_told_by_its_start_time(tmp_path, same_start, running):
    """Right after the fork the server's command line is not vLLM's yet: its recorded start
    time, not its command line, says it is ours (another CLI call must not drop its pid file);
    a reused pid has another start time and is stale."""
    from lcrag.readers.server import _start_ticks

    state = tmp_path / "s"
    state.mkdir()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ticks = _start_ticks(child.pid)
        assert ticks is not None
        recorded = ticks if same_start else str(int(ticks) + 1)
        (state / "server.pid").write_text(json.dumps(
            {"pid": child.pid, "port": 8431, "model": "smollm2-135m-instruct", "start_ticks": recorded}))
        status = ReaderServer(fast_reader_config(), home=tmp_path, state_dir=state).status()
        assert status.running is running and (state / "server.pid").exists() is running
    finally:
        child.kill()
        child.wait()


def test_server_that_dies_at_start_up_reports_its_log(tmp_path):
    config = fake_install(tmp_path, "#!/bin/sh\necho 'loading model'\necho 'ValueError: boom, the model is broken' >&2\nexit 3\n")
    server = ReaderServer(config, home=tmp_path, state_dir=tmp_path / "s")
    with pytest.raises(ReaderServerError, match="exited during start-up") as err:
        server.start()
    assert "ValueError: boom, the model is broken" in str(err.value)
    assert not server.pid_path.exists()
    assert log_tail(server.log_path).splitlines()[-1] == "ValueError: boom, the model is broken"


def test_start_timeout_stops_the_whole_process_group(tmp_path):
    # A shell that never answers HTTP, with a child process (like vLLM's engine core).
    config = fake_install(tmp_path, "#!/bin/sh\necho 'still loading'\nsleep 120 &\nwait\n")
    config = ReaderConfig(venv=config.venv, model_dir=config.model_dir, port=config.port, startup_timeout_s=2)
    server = ReaderServer(config, home=tmp_path, state_dir=tmp_path / "s")
    with pytest.raises(ReaderServerError, match=r"not ready after 2 s .*stopped") as err:
        server.start()
    assert "still loading" in str(err.value)
    assert not server.pid_path.exists()
    assert server.status().running is False


def test_no_wait_start_then_a_second_object_stops_it(tmp_path, monkeypatch):
    import signal

    from lcrag.readers import server as server_module

    config = fake_install(tmp_path, "#!/bin/sh\nsleep 120 &\nwait\n")
    first = ReaderServer(config, home=tmp_path, state_dir=tmp_path / "s")
    status = first.start(wait=False)
    assert status.running and not status.ready and status.pid
    other = ReaderServer(config, home=tmp_path, state_dir=tmp_path / "s")  # as a later CLI call would
    assert other.status().running and "starting" in other.status().message
    assert other.start(wait=False).pid == status.pid  # already running: its status, no second server
    sent: list[int] = []
    real_signal_group = server_module._signal_group

    def signal_group(pgid: int, sig: int) -> None:
        sent.append(sig)
        real_signal_group(pgid, sig)

    monkeypatch.setattr(server_module, "_signal_group", signal_group)
    assert other.stop() is True
    assert sent == [signal.SIGTERM]  # SIGTERM was enough: no SIGKILL after the grace period
    assert other.status().running is False and first.stop() is False


def test_cli_start_without_setup_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LCRAG_HOME", str(tmp_path))  # no reader of the project's own state folder interferes
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"reader": {"venv": str(tmp_path / "no-venv"), "port": free_port()}}))
    result = CliRunner().invoke(reader_app, ["start", "--config", str(config)])
    assert result.exit_code == 2
    assert "run scripts/setup_reader.sh" in result.output


def test_cli_bad_config_is_one_line_error(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"reader": {"prot": 1}}))
    result = CliRunner().invoke(reader_app, ["status", "--config", str(config)])
    assert result.exit_code == 2 and "unknown config key reader.prot" in result.output


# ---------------------------------------------------------------------- real vLLM

READER_VENV = Path(os.environ.get("LCRAG_READER_VENV", STATE / "reader-venv"))
MODEL_DIR = Path(fast_reader_config().model_dir)


def _installed_reader() -> tuple[Path, Path]:
    from tests.conftest import require_reader_install

    return require_reader_install()


@pytest.mark.reader
@pytest.mark.slow
def test_real_server_answers_a_chat_completion(tmp_path):
    venv, model = _installed_reader()
    port = free_port()
    config = fast_reader_config(venv=str(venv), model_dir=str(model), port=port, max_model_len=4096, startup_timeout_s=300)
    server = ReaderServer(config, home=STATE, state_dir=tmp_path / "reader")
    started = time.monotonic()
    pid = None
    try:
        status = server.start()
        pid = status.pid
        ready_s = time.monotonic() - started
        assert status.running and status.ready and status.url == f"http://127.0.0.1:{port}/v1"

        with urllib.request.urlopen(status.url + "/models", timeout=10) as response:
            assert response.status == 200
            models = [entry["id"] for entry in json.load(response)["data"]]
        assert models == [config.model]

        body = {
            "model": config.model,
            "messages": [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
            "max_tokens": 8,
            "temperature": 0,
        }
        request = urllib.request.Request(
            status.url + "/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        t0 = time.monotonic()
        with urllib.request.urlopen(request, timeout=120) as response:
            reply = json.load(response)
        latency = time.monotonic() - t0
        text = reply["choices"][0]["message"]["content"]
        usage = reply["usage"]
        assert text.strip()
        assert usage["prompt_tokens"] > 10 and 1 <= usage["completion_tokens"] <= 8
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        print(
            f"\nreader ready in {ready_s:.1f} s; completion {latency:.2f} s; "
            f"prompt {usage['prompt_tokens']} / completion {usage['completion_tokens']} tokens: {text!r}"
        )

        # A second object (as a later CLI call would) sees the running server.
        again = ReaderServer(config, home=STATE, state_dir=tmp_path / "reader")
        assert again.status().ready
        assert again.start().pid == status.pid
    finally:
        stopped = server.stop()
    assert stopped
    assert server.status().running is False
    assert port_is_free(port)
    assert "Application startup complete" in server.log_path.read_text(errors="replace")
    assert not _group_members(pid), "vLLM processes (engine core) outlived stop()"


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


# Lines as vLLM 0.32 (CPU) writes them to the server log.
NODE_MEMORY_LOG = """\
(APIServer pid=2621) WARNING 11-30 05:18:37 [system_utils.py:255] Found ulimit of 20000 and failed to automatically \
increase with error current limit exceeds maximum limit. This can cause fd limit errors like `OSError: [Errno 24] Too \
many open files`. Consider increasing with ulimit -n
(Worker pid=2645) ERROR 11-30 05:19:05 [multiproc_executor.py:1063]     raise ValueError(
(Worker pid=2645) ERROR 11-30 05:19:05 [multiproc_executor.py:1063] ValueError: Available memory on node 0 \
(7.33/10.96 GiB) on kv cache allocation is less than requested memory for kv (8.0 GiB). Decrease \
--kv-cache-memory-bytes, VLLM_CPU_KVCACHE_SPACE, or reduce CPU memory used by other processes.
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}
"""
OTHER_ERROR_LOG = """\
(APIServer pid=1) WARNING 11-30 05:18:37 [system_utils.py:255] fd limit errors like `OSError: [Errno 24] Too many`
(EngineCore pid=2) ERROR 11-30 05:19:05 [core.py:1510] RuntimeError: Engine core initialization failed. See root cause
(Worker pid=3) ERROR 11-30 05:19:04 [multiproc_executor.py:1063] KeyError: 'model.layers.0.mlp.gate_proj.weight'
"""


@pytest.mark.parametrize("log_text, expected", [
    (NODE_MEMORY_LOG, "reader.kv_cache_gib asks for 8 GiB of KV cache but NUMA node 0, to which vLLM binds its memory, "
                      "has 7.33 of 10.96 GiB free beside the model; set reader.kv_cache_gib to 6 or less"),
    (OTHER_ERROR_LOG, "KeyError: 'model.layers.0.mlp.gate_proj.weight'"),
    ("loading model\nValueError: boom, the model is broken\n", "ValueError: boom, the model is broken"),
    ("(APIServer pid=1) WARNING 11-30 x `OSError: [Errno 24] Too many open files`\nKilled\n", None),
    ("", None),
])
def test_start_failure_cause_leads_with_the_root_cause_and_its_fix(log_text, expected):
    assert start_failure_cause(log_text) == expected


@pytest.mark.parametrize("log_text, expected", [
    ("(EngineCore pid=3112) INFO 11-30 05:23:15 [kv_cache_utils.py:2327] CPU KV cache size: 262,144 tokens, "
     "Maximum concurrency for 8,192 tokens per request: 32.00x\n", 262_144),
    ("GPU KV cache size: 87,296 tokens\n...\nCPU KV cache size: 524,288 tokens\n", 524_288),
    ("ready\n", None),
])
def test_kv_cache_tokens_reads_the_servers_statement(log_text, expected):
    assert kv_cache_tokens(log_text) == expected


def test_a_refused_kv_cache_names_the_setting_that_fits(tmp_path):
    """The real refusal ends in a page of generic re-raises; the error leads with the cause."""
    (tmp_path / "refusal.log").write_text(NODE_MEMORY_LOG)
    config = fake_install(tmp_path, f"#!/bin/sh\ncat {tmp_path / 'refusal.log'}\nexit 1\n")
    server = ReaderServer(config, home=tmp_path, state_dir=tmp_path / "s")
    with pytest.raises(ReaderServerError) as err:
        server.start()
    first_line = str(err.value).splitlines()[0]
    assert first_line.startswith("the reader server exited during start-up: reader.kv_cache_gib asks for 8 GiB")
    assert "set reader.kv_cache_gib to 6 or less" in first_line


def test_read_log_takes_the_start_or_the_end(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("CPU KV cache size: 1,000 tokens\n" + "POST /v1/chat/completions 200\n" * 100)
    assert kv_cache_tokens(read_log(log, 64, start=True)) == 1000
    assert kv_cache_tokens(read_log(log, 64)) is None  # the end of a long run no longer says it
    assert read_log(tmp_path / "missing.log") == ""

