"""Real `dutydesk worker` and `dutydesk beat` processes running jobs end to end.

Each test gets its own DUTYDESK_HOME (a migrated SQLite ops database, or a fresh PostgreSQL
database), its own broker queue, and short tick, heartbeat and staleness settings. Jobs are
queued with `dutydesk jobs run KIND --queue` and watched in the ops database until they end.
Subprocess output goes to files that are printed when a test fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kombu import Exchange, Queue
from kombu.connection import Connection
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from dutydesk.db import build_engine
from dutydesk.jobs.models import Job, JobState
from tests.conftest import AMQP_URL, POSTGRES_URL, REDIS_URL, fresh_postgres_database
from tests.jobkinds import read_lines

REPO_ROOT = Path(__file__).resolve().parent.parent
DUTYDESK = [sys.executable, "-m", "dutydesk"]
STOP_GRACE_SECONDS = 15.0
FINISHED = frozenset({JobState.succeeded.value, JobState.failed.value})
T = TypeVar("T")


# --- helpers shared with test_processes.py ---------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2
) -> T:
    """Poll `condition` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def desk_env(home: Path, **settings: str) -> dict[str, str]:
    """The environment of a dutydesk subprocess: this one's, minus DUTYDESK_*, plus `settings`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("DUTYDESK_") or name.startswith("DUTYDESK_TEST_")
    }
    paths = [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env.update(
        PYTHONPATH=os.pathsep.join(paths),
        PYTHONUNBUFFERED="1",
        DUTYDESK_HOME=str(home),
        DUTYDESK_LOG_LEVEL="INFO",
        # `up` starts an SMTP listener too; each desk of a test needs a port of its own.
        DUTYDESK_SMTP_PORT=str(free_port()),
    )
    env.update(settings)
    return env


def run_dutydesk(
    env: dict[str, str], *args: str, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run one `dutydesk` command to its end and return what it printed."""
    return subprocess.run(
        [*DUTYDESK, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass(frozen=True)
class ProcessInfo:
    """A process as /proc shows it: enough to tell it apart from a later one with its pid."""

    pid: int
    ppid: int
    state: str
    start_ticks: int
    argv: list[str]


def process_info(pid: int) -> ProcessInfo | None:
    """What /proc says about `pid`, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces; the fields after it do not.
    fields = stat[stat.rindex(")") + 2 :].split()
    return ProcessInfo(
        pid=pid,
        ppid=int(fields[1]),
        state=fields[0],
        start_ticks=int(fields[19]),
        argv=[part.decode(errors="replace") for part in argv if part],
    )


def children_of(pid: int) -> list[ProcessInfo]:
    """The live processes whose parent is `pid` (a scan of /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = process_info(int(entry.name))
            if info is not None and info.ppid == pid and info.state != "Z":
                found.append(info)
    return found


def descendants_of(pid: int) -> list[ProcessInfo]:
    """Children, grandchildren and so on of `pid`."""
    found = []
    for child in children_of(pid):
        found.append(child)
        found.extend(descendants_of(child.pid))
    return found


def still_running(process: ProcessInfo) -> bool:
    """Whether the very process `process` describes still runs (not a zombie, not a new pid)."""
    now = process_info(process.pid)
    return now is not None and now.start_ticks == process.start_ticks and now.state != "Z"


@dataclass
class Started:
    """A subprocess started by a test, with the file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def output(self) -> str:
        """Everything the process printed so far (stdout and stderr together)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Processes:
    """The subprocesses of one test; `stop_all` ends every one of them and their children."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[Started] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> Started:
        """Start `dutydesk ARGS` in a session of its own, its output going to `name.log`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        log_path = self.folder / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                [*DUTYDESK, *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        started = Started(name, popen, log_path)
        self.started.append(started)
        return started

    def wait_for_output(self, started: Started, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until `started` prints a line matching `pattern`; fail early if it exits."""

        def printed() -> re.Match[str] | None:
            match = re.search(pattern, started.output(), re.MULTILINE)
            if match is None and started.popen.poll() is not None:
                pytest.fail(f"{started.name} exited with {started.popen.returncode}")
            return match

        return wait_until(printed, timeout, f"{started.name} to print {pattern!r}")

    def stop_all(self) -> None:
        """SIGTERM each process group, wait, then SIGKILL whatever is left (children too)."""
        for started in reversed(self.started):
            if started.popen.poll() is not None:
                continue
            below = descendants_of(started.pid)
            try:
                os.killpg(started.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                started.popen.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                print(f"{started.name} ignored SIGTERM for {STOP_GRACE_SECONDS} s; killing it")
                kill_group(started.pid)
                started.popen.wait()
            for process in below:
                if still_running(process):
                    print(f"{started.name} left pid {process.pid} behind; killing it")
                    kill_group(process.pid)

    def kill_all(self) -> None:
        """SIGKILL every process group and whatever they started, without a graceful stop.

        For a test done with its processes whose stopping it does not check: a Celery worker
        takes seconds to stop warmly (its consumer loop waits out a two-second drain first).
        """
        for started in reversed(self.started):
            if started.popen.poll() is not None:
                continue
            below = descendants_of(started.pid)
            kill_group(started.pid)
            started.popen.wait()
            for process in below:
                if still_running(process):
                    kill_group(process.pid)

    def print_logs(self) -> None:
        """Print every process's output (pytest shows it when the test failed)."""
        for started in self.started:
            print(f"===== {started.name} (pid {started.pid}, exit {started.popen.returncode})")
            print(started.output())


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by `pid` (or the process alone if it leads none)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return


# --- a desk of real processes ----------------------------------------------------------------


@dataclass(frozen=True)
class JobView:
    """A job row as read back from the ops database."""

    id: int
    kind: str
    state: str
    attempts: int
    worker: str | None
    error: str | None
    result: Any


@dataclass
class Desk:
    """One desk's settings, database and processes, as its tests drive them."""

    home: Path
    traces: Path
    env: dict[str, str]
    database_url: str
    broker_url: str
    queue: str
    processes: Processes
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = build_engine(self.database_url)

    def migrate(self) -> None:
        """`dutydesk db upgrade`."""
        done = run_dutydesk(self.env, "db", "upgrade")
        assert done.returncode == 0, done.stderr

    def start_worker(self, name: str = "worker", *, wait: bool = True) -> Started:
        """Start `dutydesk worker` and (unless not `wait`) wait until Celery says it is ready."""
        worker = self.processes.start(name, ["worker"], self.env)
        if wait:
            self.wait_until_ready(worker)
        return worker

    def wait_until_ready(self, worker: Started) -> None:
        """Wait until a worker started with `wait=False` says it is ready (its start-up, seconds
        of imports, overlaps whatever the test did meanwhile: queuing a job, starting beat)."""
        self.processes.wait_for_output(worker, r"\bready\.", timeout=60)

    def start_beat(self, *, wait: bool = True) -> Started:
        """Start `dutydesk beat` (its tick runs the sweep every DUTYDESK_TICK_SECONDS) and
        (unless not `wait`) wait until it says it starts."""
        beat = self.processes.start("beat", ["beat"], self.env)
        if wait:
            self.wait_until_beating(beat)
        return beat

    def wait_until_beating(self, beat: Started) -> None:
        """Wait until a beat started with `wait=False` says it starts."""
        self.processes.wait_for_output(beat, r"beat: Starting", timeout=60)

    def enqueue(self, kind: str, **args: Any) -> int:
        """Queue a job with `dutydesk jobs run KIND --arg k=v ... --queue`; returns its id."""
        pairs = [f"--arg={key}={json.dumps(value)}" for key, value in args.items()]
        done = run_dutydesk(self.env, "jobs", "run", kind, *pairs, "--queue")
        assert done.returncode == 0, done.stderr
        match = re.search(r"queued job (\d+)", done.stdout)
        assert match, done.stdout
        return int(match.group(1))

    def job(self, job_id: int) -> JobView:
        """The job's row as it is now."""
        with Session(self.engine) as session:
            job = session.get(Job, job_id)
            assert job is not None, f"no job {job_id}"
            return JobView(
                job.id, job.kind, job.state, job.attempts, job.worker, job.error, job.result
            )

    def wait_for_job(
        self, job_id: int, until: Callable[[JobView], bool], timeout: float, what: str
    ) -> JobView:
        """Poll the job's row until `until` holds for it."""

        def check() -> JobView | None:
            view = self.job(job_id)
            return view if until(view) else None

        try:
            return wait_until(check, timeout, f"job {job_id} to be {what}", interval=0.25)
        except pytest.fail.Exception:
            print(f"job {job_id} at the deadline: {self.job(job_id)}")
            raise

    def wait_until_finished(self, job_id: int, timeout: float) -> JobView:
        """Poll the job's row until it succeeded or failed for good."""
        return self.wait_for_job(job_id, lambda job: job.state in FINISHED, timeout, "finished")


def xdist_worker() -> str:
    """The pytest-xdist worker id (gw0, gw1, ...) or `main` without xdist."""
    return re.sub(r"\W", "", os.environ.get("PYTEST_XDIST_WORKER", "main"))


def drop_postgres_database(url: str) -> None:
    """Drop the PostgreSQL database `url` names, closing whatever still uses it."""
    name = make_url(url).database
    admin = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def delete_queue(broker_url: str, name: str) -> None:
    """Remove a test's queue, its messages and its bindings from a shared Redis or RabbitMQ."""
    # Celery's default exchange and routing key for a queue are the queue's name.
    queue = Queue(name, Exchange(name, "direct"), routing_key=name)
    with Connection(broker_url) as connection:
        bound = queue(connection.default_channel)
        # Declared first, so the Redis transport knows the bindings it must remove.
        bound.declare()
        bound.delete()


BROKER_URLS = {"sqlite": "", "redis": REDIS_URL, "amqp": AMQP_URL}


@pytest.fixture
def make_desk(home: Path, tmp_path: Path, processes: Processes) -> Iterator[Callable[..., Desk]]:
    """Build the test's desk for a broker and an ops database; tear down processes, then data."""
    desks: list[Desk] = []
    postgres_urls: list[str] = []

    def make(broker: str = "sqlite", database: str = "sqlite", **overrides: str) -> Desk:
        queue = f"dutydesk-test-{xdist_worker()}-{uuid.uuid4().hex[:10]}"
        settings = {
            "DUTYDESK_TICK_SECONDS": "1",
            "DUTYDESK_JOB_HEARTBEAT_SECONDS": "1",
            "DUTYDESK_JOB_STALE_SECONDS": "3",
            "DUTYDESK_WORKER_CONCURRENCY": "2",
            "DUTYDESK_EXTRA_MODULES": "tests.jobkinds",
            "DUTYDESK_JOB_BACKOFF_SECONDS": "1",
            "DUTYDESK_BROKER_QUEUE": queue,
            **overrides,
        }
        database_url = f"sqlite:///{home / 'dutydesk.sqlite'}"
        if database == "postgresql":
            database_url = fresh_postgres_database(
                f"dd_worker_{xdist_worker()}_{uuid.uuid4().hex[:8]}"
            )
            postgres_urls.append(database_url)
            settings["DUTYDESK_DATABASE_URL"] = database_url
        broker_url = BROKER_URLS[broker]
        if broker_url:
            settings["DUTYDESK_BROKER_URL"] = broker_url
        desk = Desk(
            home=home,
            traces=tmp_path / "traces",
            env=desk_env(home, **settings),
            database_url=database_url,
            broker_url=broker_url,
            queue=queue,
            processes=processes,
        )
        desks.append(desk)
        return desk

    yield make
    # The tests check their jobs, not how the processes stop (`up`'s tests in
    # test_processes.py do): killing them spares each test the worker's warm shutdown.
    processes.kill_all()
    for desk in desks:
        desk.engine.dispose()
        if desk.broker_url:
            delete_queue(desk.broker_url, desk.queue)
    for url in postgres_urls:
        drop_postgres_database(url)


# --- the tests -------------------------------------------------------------------------------

BROKERS = [
    pytest.param("sqlite", id="sqlite-broker"),
    pytest.param(
        "redis",
        id="redis-broker",
        marks=pytest.mark.skipif(not REDIS_URL, reason="DUTYDESK_TEST_REDIS_URL is not set"),
    ),
    pytest.param(
        "amqp",
        id="amqp-broker",
        marks=pytest.mark.skipif(not AMQP_URL, reason="DUTYDESK_TEST_AMQP_URL is not set"),
    ),
]
DATABASES = [
    pytest.param("sqlite", id="sqlite-db"),
    pytest.param(
        "postgresql",
        id="postgresql-db",
        marks=pytest.mark.skipif(not POSTGRES_URL, reason="DUTYDESK_TEST_POSTGRES_URL is not set"),
    ),
]


@pytest.mark.worker
@pytest.mark.timeout(120)
@pytest.mark.parametrize("database", DATABASES)
@pytest.mark.parametrize("broker", BROKERS)
def test_queued_job_is_run_by_the_worker_and_its_result_stored(
    make_desk: Callable[..., Desk], broker: str, database: str
) -> None:
    desk = make_desk(broker, database)
    desk.migrate()
    worker = desk.start_worker(wait=False)

    # Queued while the worker starts: the message waits in the broker until it is ready.
    job_id = desk.enqueue("test.touch", dir=str(desk.traces), name="hello")
    desk.wait_until_ready(worker)

    job = desk.wait_until_finished(job_id, timeout=30)
    assert job.state == JobState.succeeded.value, job.error
    assert job.attempts == 1
    # The worker process ran it (not the CLI that queued it) and its return value was kept.
    assert job.result == {"touched": "hello", "pid": worker.pid}
    assert job.worker is not None and f":{worker.pid}:" in job.worker
    assert (desk.traces / "hello.touched").exists()


@pytest.mark.worker
@pytest.mark.timeout(120)
def test_job_that_fails_once_is_retried_after_its_backoff_and_succeeds(
    make_desk: Callable[..., Desk],
) -> None:
    # The state between the two attempts lasts about the backoff: 5 s, so that a look at the
    # job every quarter of a second sees it on a busy machine (1 s was missed in a full run).
    desk = make_desk(DUTYDESK_JOB_BACKOFF_SECONDS="5")
    desk.migrate()
    # The worker is ready before the job is queued: a worker that took the job while starting
    # could have passed the state between the attempts before the first look.
    desk.start_worker()

    job_id = desk.enqueue("test.fail_once", dir=str(desk.traces), name="flaky")

    failed_once = desk.wait_for_job(
        job_id,
        lambda job: job.attempts == 1 and job.state == JobState.queued.value,
        timeout=30,
        what="queued again after its first failure",
    )
    assert failed_once.error is not None and "fails on its first run" in failed_once.error
    # DUTYDESK_JOB_BACKOFF_SECONDS=5 makes the retry come five seconds later.
    job = desk.wait_until_finished(job_id, timeout=45)
    assert job.state == JobState.succeeded.value, job.error
    assert job.attempts == 2
    assert job.result == {"recovered": "flaky"}
    assert job.error is None


@pytest.mark.worker
@pytest.mark.timeout(120)
def test_job_of_a_killed_worker_is_requeued_by_the_sweep_and_finished_once_elsewhere(
    make_desk: Callable[..., Desk],
) -> None:
    desk = make_desk()
    desk.migrate()
    beat = desk.start_beat(wait=False)
    first = desk.start_worker("worker-1", wait=False)

    job_id = desk.enqueue(
        "test.sleep", dir=str(desk.traces), name="long", seconds=120, retry_seconds=0.5
    )
    desk.wait_until_beating(beat)
    desk.wait_until_ready(first)
    desk.wait_for_job(
        job_id, lambda job: job.state == JobState.running.value, timeout=30, what="running"
    )
    wait_until(lambda: read_lines(desk.traces, "long", "started"), 10, "the job to start")
    os.killpg(first.pid, signal.SIGKILL)
    first.popen.wait(timeout=10)
    second = desk.start_worker("worker-2")

    job = desk.wait_until_finished(job_id, timeout=45)
    assert job.state == JobState.succeeded.value, job.error
    assert job.attempts == 2
    assert job.result == {"run": 2, "slept": 0.5}
    assert job.worker is not None and f":{second.pid}:" in job.worker
    assert read_lines(desk.traces, "long", "started") == [f"pid {first.pid}", f"pid {second.pid}"]
    assert read_lines(desk.traces, "long", "done") == [f"run 2 pid {second.pid}"]
