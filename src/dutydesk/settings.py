"""The desk's one typed configuration object, read once from `DUTYDESK_*` variables."""

from __future__ import annotations

import ipaddress
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dutydesk.errors import SettingsError as SettingsError

ENV_PREFIX = "DUTYDESK_"

# Values that look like someone forgot to set a real secret; refused outside the demo.
PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "secret", "password", "dev", "development", "test", "xxx"}
)

DATABASE_SCHEMES = ("sqlite", "postgresql")
BROKER_SCHEMES = ("sqla+sqlite", "sqla+postgresql", "redis", "rediss", "amqp", "amqps", "sqs")


class Settings(BaseSettings):
    """Everything an operator can configure. Each field's description is its documentation."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    home: Path = Field(
        default=Path("./var"),
        description="Folder holding the SQLite databases, the broker file, the secret key "
        "and the warehouse.",
    )
    database_url: str = Field(
        default="",
        description="Ops database URL: `sqlite:///PATH` or `postgresql+psycopg://...`. "
        "Empty means `sqlite:///$DUTYDESK_HOME/dutydesk.sqlite`.",
    )
    records_url: str = Field(
        default="",
        description="Record store URL (the study data the export reads): `sqlite:///PATH` or "
        "`postgresql+psycopg://...`. Empty means `sqlite:///$DUTYDESK_HOME/records.sqlite`.",
    )
    sqlite_busy_timeout_seconds: float = Field(
        default=15.0,
        ge=0,
        description="How long a SQLite write waits for another process's write to finish "
        "before failing with `database is locked`.",
    )
    broker_url: str = Field(
        default="",
        description="Celery broker: `sqla+sqlite:///PATH`, `redis://...` or `amqp://...`. "
        "Empty means a SQLite file in the home.",
    )
    secret_key: str = Field(
        default="",
        description="Key that signs CSRF tokens. Empty means generate one on first start and "
        "keep it in `$DUTYDESK_HOME/secret.key`.",
    )
    base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Address people use to reach the console, used in links the desk sends.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level of log lines written."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="`text` for people, `json` for log shippers."
    )
    session_hours: int = Field(
        default=12, ge=1, le=24 * 30, description="How long a console login lasts, in hours."
    )
    login_failures_per_minute: int = Field(
        default=10,
        ge=1,
        description="Failed sign-ins per minute for one user name from one client address "
        "before that address gets 429 for that name.",
    )
    login_failures_per_name_per_minute: int = Field(
        default=30,
        ge=1,
        description="Failed sign-ins per minute for one user name from all addresses together "
        "before that name gets 429 from everywhere.",
    )
    login_failures_per_address_per_minute: int = Field(
        default=0,
        ge=0,
        description="Failed sign-ins per minute from one client address, whatever the names, "
        "before every sign-in from it gets 429; 0 means no such limit (people behind one NAT "
        "or proxy share an address).",
    )
    forwarded_allow_ips: str = Field(
        default="",
        description="Proxies whose X-Forwarded-For and X-Forwarded-Proto are believed: "
        "addresses or networks separated by commas, or `*` for any; empty believes nobody.",
    )
    tick_seconds: float = Field(
        default=10.0, gt=0, description="How often beat asks the database what work is due."
    )
    job_heartbeat_seconds: float = Field(
        default=5.0, gt=0, description="How often a running job records that it is alive."
    )
    process_heartbeat_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often each desk process (web, worker, beat, smtp, backupd) records "
        "that it is alive; the overview shows one red after 1.5 times this without a word.",
    )
    metrics_raw_days: int = Field(
        default=35, ge=1, description="Metric points are kept this many days as they came."
    )
    metrics_hourly_days: int = Field(
        default=400, ge=1, description="Hourly roll-ups of metric points are kept this many days."
    )
    metrics_daily_days: int = Field(
        default=3650, ge=1, description="Daily roll-ups of metric points are kept this many days."
    )
    job_stale_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A running job silent this long is taken as lost and queued again.",
    )
    job_max_attempts: int = Field(
        default=3, ge=1, description="Attempts before a failing job stays failed."
    )
    job_backoff_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Wait before the first retry of a failed job; doubles with each attempt.",
    )
    broker_queue: str = Field(
        default="dutydesk",
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="Broker queue this desk's messages use; give each desk sharing a broker "
        "its own.",
    )
    warehouse: str = Field(
        default="",
        description="Folder the export writes its tables to. Empty means "
        "`$DUTYDESK_HOME/warehouse`.",
    )
    export_time_zone: str = Field(
        default="America/Los_Angeles",
        description="Time zone of the export date (the exported `uploadDate` column).",
    )
    export_redrive_max: int = Field(
        default=2, ge=0, description="How many times a failed export table is re-driven."
    )
    export_redrive_delay_seconds: float = Field(
        default=900.0, ge=0, description="Wait before a re-drive of failed tables runs."
    )
    export_memory_limit: str = Field(
        default="1GiB",
        pattern=r"^[0-9]{1,6}(\.[0-9]{1,3})? ?(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="Memory one study's DuckDB database may hold (e.g. `1GiB`, `512MiB`); "
        "beyond it the export spills to disk.",
    )
    export_threads: int = Field(
        default=0,
        ge=0,
        le=256,
        description="DuckDB threads of one study job; 0 means one per core (a foreground run "
        "shares the cores among the studies it exports side by side). Set it where study jobs "
        "share a machine's cores: several workers on one machine, or a worker running several "
        "study jobs at once.",
    )
    export_slice_records: int = Field(
        default=2_000_000,
        ge=0,
        description="A study with more records than this in a run is split into slices by "
        "table, one job each (at most one per this many records); 0 never splits.",
    )
    export_spill_folder: str = Field(
        default="",
        description="Local folder the export's DuckDB spills to. Empty means "
        "`$DUTYDESK_HOME/export-spill`.",
    )
    redrive_lists: str = Field(
        default="",
        description="Folder (or fsspec URL every worker can read) where re-drive batches write "
        "their record-ID lists for the export. Empty means `$DUTYDESK_HOME/redrive-lists`.",
    )
    occurrence_events_keep_days: int = Field(
        default=90,
        ge=0,
        description="Days a ticket keeps the timeline entry of each alarm occurrence; older "
        "ones are deleted once an hour, while the ticket's count and first and last seen stay "
        "(0 keeps them for ever). The weekly review's noisiest fingerprints count these.",
    )
    ticket_stale_days: int = Field(
        default=14,
        ge=1,
        description="Tickets open longer than this many days are listed as stale in the weekly "
        "numbers.",
    )
    worker_concurrency: int = Field(
        default=4, ge=1, le=64, description="Threads per worker process."
    )
    supervisor_pid: int = Field(
        default=0,
        ge=0,
        description="Set by `dutydesk up` for the processes it starts: each stops itself and "
        "the processes it started once the process with this PID is gone; 0 (the default) "
        "for a process started on its own.",
    )
    web_workers: int = Field(
        default=1,
        ge=1,
        le=32,
        description="Web processes serving the console, API and intake endpoints on one port. "
        "More than one spreads a heavy stream of webhooks over several cores; on SQLite their "
        "intake writes take turns through a lock file beside the database.",
    )
    log_roots: str = Field(
        default="",
        description="Comma-separated folders and `s3://bucket/prefix` URLs log queries may "
        "read; nothing outside them is read. Empty means `$DUTYDESK_HOME/logs`.",
    )
    log_s3_endpoint: str = Field(
        default="",
        validation_alias=AliasChoices(
            "DUTYDESK_LOG_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"
        ),
        description="S3 endpoint for log queries (`http://host:port` for MinIO or moto); "
        "empty means `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` if set, else AWS itself.",
    )
    log_s3_concurrency: int = Field(
        default=64,
        ge=1,
        le=1024,
        description="S3 requests a log query keeps in flight at once (objects fetched, folders "
        "listed); a bucket far away answers each after tens of milliseconds.",
    )
    log_cache_bytes: int = Field(
        default=2 << 30,
        ge=0,
        description="Bytes the parsed cache of log files may take in `$DUTYDESK_HOME/logcache`; "
        "the least recently used entries go first; 0 turns the cache off.",
    )
    log_query_memory: str = Field(
        default="",
        pattern=r"^([0-9]+(\.[0-9]+)?\s*[KMGT]i?B)?$",
        description="Memory limit of one log query's DuckDB, e.g. `2GB`; empty means "
        "DuckDB's default (80% of RAM).",
    )
    inbox_max_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest intake request or e-mail kept whole in the inbox; larger ones "
        "get 413 (SMTP 552) and are kept truncated with the reason.",
    )
    inbox_keep_days: int = Field(
        default=90,
        ge=0,
        description="Days inbox items are kept; older ones are deleted once an hour (0 keeps "
        "them for ever).",
    )
    smtp_host: str = Field(
        default="127.0.0.1",
        description="Address the e-mail intake listener (`dutydesk smtp`) listens on.",
    )
    smtp_port: int = Field(
        default=2525, ge=1, le=65535, description="Port of the e-mail intake listener."
    )
    imap_url: str = Field(
        default="",
        description="Mailbox the desk polls for alarm mail, `imaps://USER:PASSWORD@HOST[:PORT]/"
        "FOLDER` (or `imap://` for STARTTLS-less local servers); empty means no polling.",
    )
    imap_poll_seconds: int = Field(
        default=60, ge=10, description="Seconds between two polls of DUTYDESK_IMAP_URL."
    )
    rule_eval_seconds: int = Field(
        default=60,
        ge=10,
        description="Seconds between two evaluations of each alarm rule (HTTP probes use "
        "their own interval).",
    )
    log_scan_seconds: int = Field(
        default=300,
        ge=10,
        description="Seconds between two scans of the log sources' archive globs.",
    )
    silence_max_hours: int = Field(
        default=168, ge=1, description="Longest silence or maintenance window one may set."
    )
    release_commands: dict[str, list[str]] = Field(
        default={},
        description="Commands a release's `command` step may run, as JSON mapping a name to "
        'its argv (`{"deploy": ["/usr/local/bin/deploy", "--prod"]}`); never run by a shell, '
        "and a step naming any other command is refused.",
    )
    broadcast_cors_origins: str = Field(
        default="",
        description="Comma-separated origins (`https://app.example.org`) whose pages may read "
        "`GET /api/v1/broadcasts/active` from the browser (CORS); `*` means any.",
    )
    extra_modules: str = Field(
        default="",
        description="Comma-separated Python modules imported at start, to register your own "
        "job kinds and due work.",
    )
    demo_password: str = Field(
        default="",
        description="Password of the demo users; empty means generate one and print it.",
    )
    demo_mailbox: bool = Field(
        default=False,
        description="Show the console's Demo mailbox page: the mail the demo's local catcher "
        "took in (`up --demo` sets it and points outgoing mail at the catcher).",
    )
    mail_host: str = Field(
        default="",
        description="SMTP server for *outgoing* notification mail (not the intake listener's "
        "DUTYDESK_SMTP_HOST); empty means e-mail notices fail with a clear error.",
    )
    mail_port: int = Field(
        default=587, ge=1, le=65535, description="Port of the outgoing mail server."
    )
    mail_user: str = Field(
        default="", description="User name for the outgoing mail server; empty means no login."
    )
    mail_password: str = Field(default="", description="Password for the outgoing mail server.")
    mail_from: str = Field(
        default="dutydesk@localhost", description="Sender address of notification mail."
    )
    mail_starttls: bool = Field(
        default=True, description="Use STARTTLS with the outgoing mail server."
    )
    notify_max_attempts: int = Field(
        default=6, ge=1, description="Attempts of one notice before it becomes a dead letter."
    )
    notify_backoff_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Wait before the first retry of a failed notice; doubles on each attempt.",
    )
    notify_rate_per_minute: int = Field(
        default=30,
        ge=1,
        description="Most notices one channel sends per minute; the rest wait their turn.",
    )
    notify_group_wait_seconds: int = Field(
        default=0,
        ge=0,
        description="Wait after a ticket opens before its first notice, so a burst of alarms "
        "is told once (Alertmanager's group_wait).",
    )
    notify_group_interval_minutes: int = Field(
        default=5,
        ge=1,
        description="Least time between two notices about new occurrences of a ticket that "
        "was notified already (Alertmanager's group_interval).",
    )
    notify_repeat_interval_minutes: int = Field(
        default=240,
        ge=0,
        description="After every escalation step ran unacknowledged, remind the last target "
        "this often (Alertmanager's repeat_interval); 0 means never.",
    )
    notify_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time limit of one webhook or mail send."
    )
    watchdog_minutes: int = Field(
        default=5,
        ge=1,
        description="Every critical ticket must get a notice or escalation step within this "
        "many minutes, or the self-check fails.",
    )
    watchdog_url: str = Field(
        default="",
        description="Outside heartbeat URL pinged after each self-check (`/fail` appended on "
        "failure); empty means no ping.",
    )
    change_notice_list: str = Field(
        default="",
        description="Contact list (by name) told of every high-risk change at once and of the "
        "rest in a daily digest; empty means no change notices are sent.",
    )
    review_mail_list: str = Field(
        default="",
        description="Contact list (by name) sent the weekly review as an HTML e-mail with its "
        "charts; empty means the review is not mailed.",
    )
    review_mail_weekday: int = Field(
        default=1,
        ge=1,
        le=7,
        description="ISO weekday (1 Monday .. 7 Sunday) the review e-mail is sent on, once a week.",
    )
    review_mail_hour: int = Field(
        default=8, ge=0, le=23, description="UTC hour from which the weekly review e-mail is sent."
    )
    backup_folder: str = Field(
        default="",
        description="Where backups of the built-in targets go: a folder or `s3://bucket/prefix`. "
        "Empty means `$DUTYDESK_HOME/backups`.",
    )
    backup_s3_endpoint: str = Field(
        default="",
        validation_alias=AliasChoices(
            "DUTYDESK_BACKUP_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"
        ),
        description="S3 endpoint for backup destinations (`http://host:port` for MinIO or "
        "moto); empty means `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` if set, else AWS itself.",
    )
    backup_litestream: bool = Field(
        default=False,
        description="Replicate SQLite targets marked continuous (the ops database among them) "
        "with a supervised `litestream replicate`, run by `dutydesk up` and `dutydesk backupd`.",
    )
    backup_scratch_postgres_url: str = Field(
        default="",
        description="PostgreSQL server where restore drills of PostgreSQL targets make their "
        "scratch databases; empty means the target's own server.",
    )
    backup_postgres_bin: str = Field(
        default="/usr/lib/postgresql/15/bin",
        description="Folder of the PostgreSQL client programs backups use (`pg_dump`, "
        "`pg_restore`, `pg_amcheck`, `initdb`, `pg_ctl`).",
    )
    dbchange_tasks_dir: str = Field(
        default="",
        description="Checkout of the team's repository whose `tasks/<date>_<name>/<name>.sql` "
        "scripts database changes may name by path; empty means scripts are pasted or uploaded.",
    )
    dbchange_backup_max_age_hours: float = Field(
        default=24.0,
        gt=0,
        description="Apply needs a verified backup of the target at most this old, else it "
        "takes one first.",
    )
    dbchange_dump_folder: str = Field(
        default="",
        description="Where apply keeps the plain dump it takes of a target first (while no "
        "backup of it is verified); empty means `$DUTYDESK_HOME/dbchange-dumps`.",
    )
    exception_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest body (as sent, compressed or not) the Sentry-compatible store "
        "and envelope endpoints take, and most bytes it may inflate to; larger ones get 413.",
    )
    exception_max_event_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest single event (inflated); a larger envelope item is refused while "
        "the envelope's other items are kept.",
    )
    exception_events_per_group: int = Field(
        default=100,
        ge=1,
        description="Newest events kept per exception group (the group still counts them all).",
    )
    supervisor_poll_seconds: float = Field(
        default=30.0,
        ge=5,
        description="How often the registered Supervisor servers are polled for FATAL, BACKOFF "
        "and unexpectedly EXITED processes.",
    )

    @field_validator("database_url", "records_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if value and not value.startswith(DATABASE_SCHEMES):
            raise ValueError(f"must start with one of {', '.join(DATABASE_SCHEMES)}")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0]
        if value and scheme not in BROKER_SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(BROKER_SCHEMES)}")
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies(cls, value: str) -> str:
        items = [item.strip() for item in value.split(",") if item.strip()]
        if items == ["*"]:
            return "*"
        normal = []
        for item in items:
            try:
                if "/" in item:
                    normal.append(str(ipaddress.ip_network(item, strict=False)))
                else:
                    normal.append(str(ipaddress.ip_address(item)))
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network (give `*` alone to believe any)"
                ) from None
        return ",".join(normal)

    @field_validator("export_time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _stale_after_heartbeat(self) -> Settings:
        if self.job_stale_seconds <= self.job_heartbeat_seconds * 2:
            raise ValueError(
                "DUTYDESK_JOB_STALE_SECONDS must be more than twice DUTYDESK_JOB_HEARTBEAT_SECONDS"
            )
        return self

    @property
    def home_path(self) -> Path:
        """The home folder as an absolute path."""
        return self.home.expanduser().resolve()

    @property
    def trusted_proxies(self) -> list[str] | Literal["*"]:
        """The proxies whose forwarded headers are believed: `*` for any, else addresses and
        networks (empty: nobody)."""
        if self.forwarded_allow_ips == "*":
            return "*"
        return [item for item in self.forwarded_allow_ips.split(",") if item]

    @property
    def effective_database_url(self) -> str:
        """The ops database URL, defaulting to SQLite in the home."""
        return self.database_url or f"sqlite:///{self.home_path / 'dutydesk.sqlite'}"

    @property
    def effective_records_url(self) -> str:
        """The record store URL, defaulting to SQLite in the home."""
        return self.records_url or f"sqlite:///{self.home_path / 'records.sqlite'}"

    @property
    def effective_backup_folder(self) -> str:
        """Where backups of the built-in targets go, defaulting to `backups` in the home."""
        return self.backup_folder or str(self.home_path / "backups")

    @property
    def effective_log_roots(self) -> str:
        """The allowed log roots, defaulting to `logs` in the home."""
        return self.log_roots or str(self.home_path / "logs")

    @property
    def effective_broker_url(self) -> str:
        """The broker URL, defaulting to Celery's SQLAlchemy transport on SQLite in the home."""
        return self.broker_url or f"sqla+sqlite:///{self.home_path / 'broker.sqlite'}"

    def ensure_home(self) -> Path:
        """Create the home folder if needed and return it."""
        path = self.home_path
        path.mkdir(parents=True, exist_ok=True)
        return path

    def signing_key(self, *, allow_placeholder: bool = False) -> str:
        """The secret key: the configured one, or the one kept in the home (made on first use)."""
        if self.secret_key:
            weak = self.secret_key.lower() in PLACEHOLDER_SECRETS or len(self.secret_key) < 32
            if weak and not allow_placeholder:
                raise SettingsError(
                    "DUTYDESK_SECRET_KEY looks like a placeholder (shorter than 32 characters "
                    "or a well-known word); set a long random value or leave it empty"
                )
            return self.secret_key
        key_file = self.ensure_home() / "secret.key"
        if not key_file.exists():
            key_file.write_text(secrets.token_urlsafe(48))
            key_file.chmod(0o600)
        return key_file.read_text().strip()


def describe_validation_error(error: ValidationError) -> str:
    """Turn pydantic's error into lines that name each `DUTYDESK_*` variable at fault."""
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        name = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
        lines.append(f"{name}: {item['msg']}")
    return "; ".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings, read once. Tests call `get_settings.cache_clear()` after changing the env."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None


def settings_table() -> str:
    """The Markdown table of every setting, as the README shows it."""
    rows = ["| variable | default | what it does |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "" if default in ("", None) else str(default)
        if isinstance(default, Path):
            shown = default.as_posix() if default.is_absolute() else f"./{default.as_posix()}"
        rows.append(
            f"| `{ENV_PREFIX}{name.upper()}` | {f'`{shown}`' if shown else '(empty)'} "
            f"| {field.description} |"
        )
    return "\n".join(rows)
