"""``lcrag schedule ingest``: re-ingest a source on a schedule, as a served Prefect deployment.

A typer sub-app; ``lcrag.app.cli.app`` registers it as ``lcrag schedule``. The command
registers a deployment of ``lcrag.flows.ingest.ingest_flow`` with a Prefect server and then
runs its scheduled runs in this process (``flow.serve`` style) until Ctrl-C. Runs always
write index generations, so a running ``lcrag serve`` switches to each new one without
a restart. A server is required: an ephemeral API has no scheduler, so nothing would fire.
"""

from __future__ import annotations

import asyncio
import datetime
import os
from pathlib import Path
from typing import Any

import typer

from lcrag.app.cli.common import LcragError, console, fail, out

schedule_app = typer.Typer(
    help="Scheduled work served to a Prefect server (start one with scripts/prefect_server.sh).",
    no_args_is_help=True,
    add_completion=False,
)

FLOW_ENTRYPOINT = "lcrag.flows.ingest.ingest_flow"
NEXT_RUNS_SHOWN = 3
HEALTH_TIMEOUT_S = 5.0
SCHEDULER_LOCK = "schedule.lock"  # in the index root: one `lcrag schedule ingest` per index
START_SERVER_HINT = (
    "start one with `make prefect-server` (it keeps PREFECT_HOME in the state folder) or "
    "`PREFECT_HOME=$LCRAG_HOME/prefect prefect server start --host 127.0.0.1`, then "
    "`export PREFECT_API_URL=http://127.0.0.1:4200/api`"
)


class ScheduleOptionError(LcragError, ValueError):
    """A --cron/--every/--timezone combination that cannot become a schedule."""


def build_schedule(cron: str | None, every: float | None, timezone: str):
    """A Prefect schedule from exactly one of --cron/--every, validated now rather
    than on the server (where a bad expression would surface as a stack trace)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from prefect.schedules import Cron, Interval

    if (cron is None) == (every is None):
        raise ScheduleOptionError('give exactly one of --cron EXPR (e.g. --cron "0 * * * *") or --every SECONDS')
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleOptionError(f"unknown --timezone {timezone!r}: use an IANA name such as UTC or Europe/Berlin") from None
    if every is not None:
        if every <= 0:
            raise ScheduleOptionError(f"--every must be a positive number of seconds, got {every:g}")
        return Interval(datetime.timedelta(seconds=every), timezone=timezone)
    try:
        return Cron(cron, timezone=timezone)
    except ValueError as err:
        raise ScheduleOptionError(
            f"invalid --cron {cron!r} ({err}): use five fields, minute hour day month weekday, e.g. \"0 * * * *\" for hourly"
        ) from None


def describe_schedule(schedule) -> str:
    if schedule.cron is not None:
        return f'cron "{schedule.cron}" ({schedule.timezone})'
    return f"every {schedule.interval.total_seconds():g} s ({schedule.timezone})"


def next_run_times(schedule, count: int = NEXT_RUNS_SHOWN) -> list[datetime.datetime]:
    """The next run times as the server's scheduler computes them (same schedule classes)."""
    from prefect.server.schemas.schedules import CronSchedule, IntervalSchedule

    if schedule.cron is not None:
        server_schedule = CronSchedule(cron=schedule.cron, timezone=schedule.timezone, day_or=schedule.day_or)
    else:
        server_schedule = IntervalSchedule(interval=schedule.interval, anchor_date=schedule.anchor_date, timezone=schedule.timezone)
    return list(asyncio.run(server_schedule.get_dates(n=count)))


def configured_api_url() -> str:
    """The Prefect API this process talks to (env or profile), or an error naming the fix."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise ScheduleOptionError(
            "no Prefect API is configured (PREFECT_API_URL is unset); schedules only fire on a running "
            f"Prefect server: {START_SERVER_HINT}"
        )
    return str(url).rstrip("/")


def check_api_answers(url: str) -> None:
    """Fail fast (seconds, not the client's retry budget) when the server is down."""
    import httpx

    try:
        httpx.get(f"{url}/health", timeout=HEALTH_TIMEOUT_S).raise_for_status()
    except httpx.HTTPError as err:
        raise ScheduleOptionError(f"the Prefect API at {url} does not answer ({err}); {START_SERVER_HINT}") from None


async def serve_ingest_deployment(deployment_name: str, schedule, parameters: dict[str, Any], announce) -> None:
    """Register the deployment, then poll for and execute its runs until cancelled.
    One run at a time: a run due while the previous one is still ingesting is cancelled
    (the index has one writer; the next run picks up whatever changed meanwhile)."""
    from prefect.client.schemas.objects import (
        ConcurrencyLimitConfig,
        ConcurrencyLimitStrategy,
    )
    from prefect.flows import load_flow_from_entrypoint
    from prefect.runner import Runner
    from prefect.types.entrypoint import EntrypointType

    # By entrypoint, as the deployment records it: the flows sit above the pipeline, so
    # the command line names the flow rather than importing it (imports run one way).
    ingest_flow = load_flow_from_entrypoint(FLOW_ENTRYPOINT, use_placeholder_flow=False)
    runner = Runner(name=deployment_name, pause_on_shutdown=True)
    deployment_id = await runner.aadd_flow(
        ingest_flow,
        name=deployment_name,
        schedule=schedule,
        parameters=parameters,
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
        description=f"lcrag: re-ingest {parameters['source']} into {parameters['index']} (generations)",
        tags=["lcrag", "ingest"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    try:
        orphans = await crash_orphaned_runs(deployment_id)
    except BaseException:  # nobody will serve its runs: do not leave its schedule firing
        await pause_deployment(deployment_id)
        raise
    announce(deployment_id, orphans)
    await run_until_signalled(runner)


async def pause_deployment(deployment_id) -> None:
    from prefect.client.orchestration import get_client

    try:
        async with get_client() as client:
            await client.pause_deployment(deployment_id)
    except Exception:  # noqa: BLE001 - the caller's error is the one to report
        pass


ORPHAN_MESSAGE = "its lcrag schedule process died mid-run; marked crashed by the next one so the schedule runs again"


async def crash_orphaned_runs(deployment_id) -> list[str]:
    """Mark crashed the runs of this deployment still PENDING, RUNNING or CANCELLING;
    returns their names. Runs execute only inside the process serving the deployment,
    and the caller holds the index's scheduler lock, so such a run's process is dead.
    Left alone, it would hold the deployment's one concurrency slot and every run that
    comes due would be cancelled ("Deployment concurrency limit reached")."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.states import Crashed

    unfinished = FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING, StateType.CANCELLING])
    async with get_client() as client:
        runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]), state=FlowRunFilterState(type=unfinished),
        ), sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=200)  # explicit: Prefect 3.8.8's server refuses None
        for run in runs:  # force: the minimal policy, which still releases the concurrency slot
            await client.set_flow_run_state(run.id, Crashed(message=ORPHAN_MESSAGE), force=True)
    return [run.name for run in runs]


async def run_until_signalled(runner) -> None:
    """Run the runner until SIGINT or SIGTERM, then let it pause the schedule and finish
    cleanly. Ours replaces the SIGTERM handler ``Runner.start`` installs, which exits
    from inside the event loop without awaiting its own stop."""
    import signal

    loop = asyncio.get_running_loop()
    serving = asyncio.ensure_future(runner.start())
    await asyncio.sleep(0)  # runner.start() installs its handler before its first await
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, serving.cancel)
    try:
        await serving
    except asyncio.CancelledError:
        if not serving.cancelled():
            raise


@schedule_app.command("ingest")
def ingest(
    source: Path = typer.Argument(..., help="What `lcrag ingest` reads: a folder, a file, or a data set."),
    index: Path = typer.Option(..., "--index", "-i", help="Index root; every run writes and publishes a new generation in it."),
    cron: str | None = typer.Option(None, "--cron", help='Cron expression, e.g. "0 * * * *" (hourly). Exactly one of --cron/--every.'),
    every: float | None = typer.Option(None, "--every", help="Run every SECONDS instead of on a cron expression."),
    deployment_name: str | None = typer.Option(None, "--name", help="Deployment name (default: ingest-<index folder name>)."),
    fmt: str = typer.Option("auto", "--format", "-f", help="auto | files | beir | squad | hotpotqa | jsonl."),
    config_file: Path | None = typer.Option(None, "--config", "-c", help="YAML config (see configs/default.yaml)."),
    source_name: str | None = typer.Option(None, "--source-name", help="Source name inside the index (default: the source's file or folder name)."),
    timezone: str = typer.Option("UTC", "--timezone", help="IANA time zone the cron expression is read in."),
) -> None:
    """Serve a Prefect deployment that re-ingests SOURCE into --index on a schedule, until Ctrl-C.

    Needs a running Prefect server: an ephemeral API has no scheduler, so nothing would fire. Start one with scripts/prefect_server.sh, then `export PREFECT_API_URL=http://127.0.0.1:4200/api`.

    Runs execute in this process, one at a time, and always write index generations: a running
    `lcrag serve --index` switches to each published one without a restart.

    Ctrl-C pauses the schedule; serving the same --name again resumes it.
    """
    import httpx

    from lcrag.core.paths import state_home

    # Prefect keeps its profile and local state in the project's state folder unless told otherwise.
    os.environ.setdefault("PREFECT_HOME", str(state_home() / "prefect"))

    source, index = source.expanduser().resolve(), index.expanduser().resolve()
    config_file = config_file.expanduser().resolve() if config_file is not None else None
    try:
        schedule = build_schedule(cron, every, timezone)
        if not source.exists():
            raise ScheduleOptionError(f"source {source} does not exist: give a folder, a file or a data set")
        from lcrag.pipeline.config import load_config

        load_config(config_file)  # a bad config is reported now, not at every scheduled run
        api_url = configured_api_url()
        check_api_answers(api_url)
    except LcragError as err:
        fail(str(err))

    name = deployment_name or f"ingest-{index.name}"
    parameters = {
        "source": str(source), "index": str(index), "fmt": fmt,
        "config_file": str(config_file) if config_file is not None else None,
        "name": source_name, "generations": True,
    }

    times = ", ".join(moment.isoformat() for moment in next_run_times(schedule))

    def announce(deployment_id, orphans: list[str]) -> None:
        out.print(f"Prefect API: {api_url}", highlight=False)
        out.print(f"deployment: lcrag-ingest/{name} (id {deployment_id})", highlight=False)
        if orphans:
            out.print(f"marked crashed: {', '.join(orphans)} (left unfinished by a process that died; "
                      "its unpublished generation is resumed by the next run)", highlight=False)
        out.print(f"schedule: {describe_schedule(schedule)}", highlight=False)
        out.print(f"next runs: {times}", highlight=False)
        out.print(f"serving {source} -> {index} (generations); Ctrl-C stops", highlight=False)

    from lcrag.pipeline.index.folder import IndexStateError, WriterLock

    index.mkdir(parents=True, exist_ok=True)
    try:
        with WriterLock(index, SCHEDULER_LOCK, role="serving the ingestion schedule of"):
            asyncio.run(serve_ingest_deployment(name, schedule, parameters, announce))
    except KeyboardInterrupt:
        pass
    except IndexStateError as err:
        fail(str(err))
    except httpx.HTTPError as err:
        fail(f"the Prefect API at {api_url} refused the deployment ({err})")
    console.print(f"stopped; the schedule of lcrag-ingest/{name} is paused until it is served again", highlight=False)
