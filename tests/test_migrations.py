"""The migrations build the schema the models describe, on SQLite and PostgreSQL, both ways.

Every test gets its own empty database (`fresh_database_url`); the `backend` fixture runs each
database test on SQLite and, when DUTYDESK_TEST_POSTGRES_URL is set, on PostgreSQL too.
"""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner, Result

from dutydesk import migrations
from dutydesk.cli import app
from dutydesk.db import Base, build_engine, get_engine, sqlite_busy_timeout_ms
from dutydesk.registry import load_domains
from tests.conftest import clear_caches, fresh_database_url

VERSION_TABLE = "alembic_version"
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def revisions_base_to_head() -> list[Script]:
    """Every migration script, oldest first."""
    scripts = ScriptDirectory.from_config(migrations.alembic_config("sqlite://"))
    return list(reversed(list(scripts.walk_revisions())))


def revision_at(url: str) -> str | None:
    """The revision the database at `url` is at."""
    engine = build_engine(url)
    try:
        return migrations.current(engine)
    finally:
        engine.dispose()


def app_tables(url: str) -> set[str]:
    """The tables in the database, without Alembic's bookkeeping table or the search index
    (an FTS5 or tsvector table the models cannot describe)."""
    engine = build_engine(url)
    try:
        names = set(sa.inspect(engine).get_table_names()) - {VERSION_TABLE}
        return {name for name in names if not migrations.is_unmodelled(name)}
    finally:
        engine.dispose()


def schema_of(url: str) -> dict[str, dict[str, Any]]:
    """Tables, columns, keys and indexes as the database reports them."""
    engine = build_engine(url)
    try:
        inspector = sa.inspect(engine)
        schema: dict[str, dict[str, Any]] = {}
        for table in sorted(set(inspector.get_table_names()) - {VERSION_TABLE}):
            schema[table] = {
                "columns": [
                    (column["name"], str(column["type"]), column["nullable"])
                    for column in inspector.get_columns(table)
                ],
                "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
                "indexes": sorted(
                    (index["name"], tuple(index["column_names"]), bool(index["unique"]))
                    for index in inspector.get_indexes(table)
                ),
                "unique": sorted(
                    (unique["name"], tuple(unique["column_names"]))
                    for unique in inspector.get_unique_constraints(table)
                ),
                "foreign_keys": sorted(
                    (
                        fk["name"],
                        tuple(fk["constrained_columns"]),
                        fk["referred_table"],
                        tuple(fk["referred_columns"]),
                    )
                    for fk in inspector.get_foreign_keys(table)
                ),
            }
        return schema
    finally:
        engine.dispose()


# One row for every table of the models; a new table must get a row here (the test says so).
ROWS: dict[str, dict[str, Any]] = {
    "exception_projects": {
        "id": 1,
        "name": "shop",
        "public_key": "0" * 32,
        "rate_limit": 600,
        "rate_window_seconds": 60,
        "enabled": True,
        "created_by": "test",
        "created_at": NOW,
    },
    "exception_groups": {
        "id": 1,
        "project_id": 1,
        "fingerprint": "a" * 64,
        "title": "ValueError: bad input",
        "culprit": "shop.views in checkout",
        "level": "error",
        "count": 1,
        "first_seen": NOW,
        "last_seen": NOW,
        "first_release": "shop@1.0",
        "last_release": "shop@1.0",
        "environment": "production",
        "alarm_fingerprint": "exception:1:aaaa",
    },
    "exception_events": {
        "id": 1,
        "group_id": 1,
        "event_id": "b" * 32,
        "received_at": NOW,
        "release": "shop@1.0",
        "environment": "production",
        "message": "",
        "data": {"exceptions": [], "tags": {}},
    },
    "exception_rate_counts": {"project_id": 1, "window_start": NOW, "count": 1},
    "supervisor_servers": {
        "id": 1,
        "name": "app-1",
        "url": "http://127.0.0.1:9001/RPC2",
        "username": "desk",
        "password": "secret",
        "enabled": True,
        "last_polled_at": NOW,
        "last_error": None,
        "created_by": "test",
        "created_at": NOW,
    },
    "supervised_processes": {
        "id": 1,
        "server_id": 1,
        "name": "web:web",
        "state": "RUNNING",
        "pid": 123,
        "started": 1700000000,
        "exit_status": 0,
        "seen_at": NOW,
    },
    "supervisor_actions": {
        "id": 1,
        "server_id": 1,
        "process": "web:web",
        "action": "stop",
        "reason": "failover",
        "actor": "test",
        "at": NOW,
        "outcome": "done",
    },
    "diagnose_services": {
        "id": 1,
        "name": "shop",
        "config": {"databases": [{"name": "main", "url": "postgresql://db.example/shop"}]},
        "db_passwords": {},
        "created_by": "test",
        "created_at": NOW,
    },
    "diagnoses": {
        "id": 1,
        "service_id": 1,
        "ticket_id": 1,
        "actor": "test",
        "at": NOW,
        "lines": [{"key": "alarms", "verdict": "ok", "evidence": []}],
    },
    "scrape_targets": {
        "id": 1,
        "name": "host-1",
        "url": "http://127.0.0.1:9100/metrics",
        "interval_seconds": 60,
        "keep": ["node_load1"],
        "labels": {"host": "host-1"},
        "enabled": True,
        "last_scraped_at": NOW,
        "last_error": None,
        "last_series": 1,
        "previous": {"@": "2026-12-07T04:00:00+00:00"},
        "created_by": "test",
        "created_at": NOW,
    },
    "backup_targets": {
        "id": 1,
        "name": "ops",
        "kind": "sqlite",
        "source_url": "sqlite:///var/dutydesk.sqlite",
        "destination": "var/backups/ops",
        "every_minutes": 1440,
        "drill_every_minutes": 1440,
        "max_age_minutes": 1560,
        "keep_hourly": 24,
        "keep_daily": 7,
        "keep_weekly": 4,
        "continuous": False,
        "enabled": True,
        "created_at": NOW,
    },
    "backups": {
        "id": 1,
        "target_id": 1,
        "method": "snapshot",
        "state": "succeeded",
        "started_at": NOW,
        "finished_at": NOW,
        "size_bytes": 4096,
        "sha256": "c" * 64,
        "schema_revision": "0015",
        "location": "var/backups/ops/ops-1.sqlite.zst",
        "table_counts": {"users": 1},
        "row_checksums": {"users": "d" * 64},
        "verification": "verified",
        "verified_at": NOW,
        "error": None,
    },
    "backup_drills": {
        "id": 1,
        "target_id": 1,
        "backup_id": 1,
        "state": "passed",
        "started_at": NOW,
        "finished_at": NOW,
        "restored_to": None,
        "rpo_seconds": 12.5,
        "rto_seconds": 0.8,
        "checks": {"integrity_check": "ok"},
        "error": None,
    },
    "users": {
        "id": 1,
        "username": "ada",
        "email": "ada@example.org",
        "role": "admin",
        "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$placeholder",
        "active": True,
        "created_at": NOW,
    },
    "api_tokens": {
        "id": 1,
        "name": "ci",
        "prefix": "ddt_abcdef",
        "token_hash": "a" * 64,
        "scopes": ["read", "write"],
        "user_id": 1,
        "created_at": NOW,
        "last_used_at": None,
        "revoked_at": None,
    },
    "web_sessions": {
        "id": 1,
        "token_hash": "b" * 64,
        "user_id": 1,
        "created_at": NOW,
        "expires_at": NOW + dt.timedelta(hours=12),
        "client": "127.0.0.1",
    },
    "login_failures": {"id": 1, "client": "127.0.0.1", "username": "ada", "at": NOW},
    "jobs": {
        "id": 1,
        "kind": "people.prune",
        "args": {"keep_days": 3},
        "state": "queued",
        "attempts": 0,
        "max_attempts": 3,
        "run_after": NOW,
        "enqueued_at": NOW,
        "created_by": "test",
        "created_at": NOW,
    },
    "due_marks": {"name": "people.prune", "last_at": NOW},
    "change_requests": {
        "id": 1,
        "kind": "redrive",
        "title": "Re-drive of November",
        "payload": {"batch_id": 1},
        "evidence": {"count": 2, "sha256": "c" * 64},
        "evidence_hash": "d" * 64,
        "data_version": 1,
        "state": "pending",
        "author_id": 1,
        "revised_by_id": None,
        "tracker_url": "https://tracker.example/PROJ-1",
        "created_at": NOW,
        "updated_at": NOW,
        "result": None,
        "error": None,
        "job_id": 1,
    },
    "change_signoffs": {
        "id": 1,
        "change_id": 1,
        "user_id": 1,
        "role": "admin",
        "data_version": 1,
        "evidence_hash": "d" * 64,
        "comment": "looks right",
        "at": NOW,
        "dropped_at": None,
    },
    "change_comments": {"id": 1, "change_id": 1, "author_id": 1, "body": "count?", "at": NOW},
    "change_events": {
        "id": 1,
        "change_id": 1,
        "at": NOW,
        "actor": "ada",
        "kind": "opened",
        "detail": {"data_version": 1},
    },
    "signoff_rules": {
        "id": 1,
        "kind": "redrive",
        "role": "approver",
        "count": 1,
        "created_at": NOW,
    },
    "metric_points": {
        "id": 1,
        "series": "uniqueHealthCodes[study-a]",
        "name": "uniqueHealthCodes",
        "labels": {"key": "study-a"},
        "at": NOW,
        "value": 42.0,
        "source": "export:abc",
    },
    "metric_rollups": {
        "id": 1,
        "series": "uniqueHealthCodes[study-a]",
        "name": "uniqueHealthCodes",
        "labels": {"key": "study-a"},
        "period": "hour",
        "at": NOW,
        "count": 1,
        "total": 42.0,
        "low": 42.0,
        "high": 42.0,
        "last": 42.0,
    },
    "metric_series": {
        "id": 1,
        "key": "uniqueHealthCodes[study-a]",
        "name": "uniqueHealthCodes",
        "labels": {"key": "study-a"},
    },
    "dashboards": {
        "id": 1,
        "name": "export",
        "description": "",
        "panels": [{"title": "rows", "series": "export.lineCount[*", "step": "day"}],
        "range_days": 30,
        "created_by": "ann",
        "created_at": NOW,
    },
    "review_marks": {
        "id": 1,
        "period_start": NOW,
        "period_end": NOW,
        "marked_at": NOW,
        "marked_by": "ada",
        "attendees": ["ada", "olga"],
        "notes": "Export fine.",
    },
    "review_actions": {"id": 1, "review_id": 1, "text": "Fix the CI mail", "ticket_id": None},
    "process_heartbeats": {
        "id": 1,
        "role": "worker",
        "host": "desk-1",
        "pid": 4242,
        "started_at": NOW,
        "beat_at": NOW,
    },
    "export_schedules": {
        "id": 1,
        "name": "nightly",
        "time_zone": "America/Los_Angeles",
        "schedule_type": "DAILY",
        "request_override": None,
        "enabled": True,
        "last_fired_for": None,
        "created_at": NOW,
    },
    "export_runs": {
        "id": 1,
        "request": {"useLastExportTime": True},
        "request_text": "endDateTime=..., redriveCount=0, tag=(no tag), useLastExportTime=true",
        "run_key": "0123456789abcdef",
        "state": "succeeded",
        "export_date": "2026-11-24",
        "created_by": "test",
        "created_at": NOW,
        "studies": ["study-a"],
        "metrics": {},
        "log": "",
        "parent_run_id": None,
    },
    "export_study_parts": {
        "id": 1,
        "run_id": 1,
        "study_id": "study-a",
        "start_ms": 0,
        "end_ms": 1,
        "state": "succeeded",
        "metrics": {},
        "failed_tables": [],
        "failed_records": [],
    },
    "redrive_batches": {
        "id": 1,
        "month": "2026-01",
        "open_month": None,
        "state": "done",
        "change_id": 1,
        "export_run_id": 1,
        "ticket_id": None,
        "verification": {"missing": 0},
        "verified_at": NOW,
        "created_by": "ada",
        "created_at": NOW,
        "updated_at": NOW,
    },
    "redrive_items": {
        "id": 1,
        "batch_id": 1,
        "record_id": "rec-1",
        "study_id": "study-a",
        "reason": "failed in export run 1",
        "source": "export",
        "times_added": 1,
        "added_by": "ada",
        "added_at": NOW,
    },
    "export_tables": {
        "key": "study-a-appVersion",
        "study_id": "study-a",
        "kind": "appVersion",
        "columns": [{"name": "recordId", "type": "STRING", "max_length": 36}],
        "row_count": 1,
        "created_at": NOW,
        "updated_at": NOW,
    },
    "export_times": {"study_id": "study-a", "last_export_ms": 1},
    "tickets": {
        "id": 1,
        "title": "Disk usage above 90% on db-1",
        "description": "93% full",
        "severity": "high",
        "status": "open",
        "assignee_id": 1,
        "source": "alertmanager",
        "fingerprint": "disk-db-1",
        "payload": {"labels": {"instance": "db-1"}},
        "first_seen_at": NOW,
        "last_seen_at": NOW,
        "occurrences": 1,
        "seen_before_id": None,
        "created_by": "test",
        "created_at": NOW,
    },
    "ticket_notes": {
        "id": 1,
        "ticket_id": 1,
        "author": "ada",
        "body": "Cleaned the WAL archives.",
        "created_at": NOW,
    },
    "ticket_links": {
        "id": 1,
        "ticket_id": 1,
        "url": "https://tracker.example/browse/OPS-1",
        "key": "OPS-1",
        "created_by": "ada",
        "created_at": NOW,
    },
    "ticket_events": {
        "id": 1,
        "ticket_id": 1,
        "at": NOW,
        "actor": "alertmanager",
        "kind": "opened",
        "detail": {},
    },
    "integrations": {
        "id": 1,
        "name": "prometheus",
        "kind": "alertmanager",
        "token_hash": "0" * 64,
        "token_prefix": "abcdef",
        "signing_secret": None,
        "group_by": [],
        "resolve_when": {},
        "close_on_resolve": True,
        "default_severity": "warning",
        "rate_limit": 300,
        "rate_window_seconds": 300,
        "enabled": True,
        "created_by": "test",
        "created_at": NOW,
    },
    "inbox_items": {
        "id": 1,
        "received_at": NOW,
        "source": "alertmanager",
        "integration_id": 1,
        "method": "POST",
        "path": "/hooks/alertmanager/abcdef…",
        "client": "127.0.0.1",
        "headers": {"content-type": "application/json"},
        "body": "{}",
        "body_bytes": 2,
        "truncated": False,
        "outcome": "accepted",
        "status_code": 200,
        "reason": None,
        "alarm_ids": [1],
        "ticket_ids": [1],
    },
    "intake_rate_counts": {"integration_id": 1, "minute": NOW, "accepted": 1, "refused": 0},
    "ping_checks": {
        "id": 1,
        "integration_id": 1,
        "period_seconds": 86400,
        "grace_seconds": 3600,
        "last_ping_at": NOW,
        "last_ping_kind": "success",
        "last_start_at": None,
        "last_success_at": NOW,
    },
    "pings": {
        "id": 1,
        "check_id": 1,
        "at": NOW,
        "kind": "success",
        "exit_status": None,
        "run_id": None,
        "body": "backup done",
        "client": "127.0.0.1",
    },
    "alarms": {
        "id": 1,
        "fingerprint": "prometheus:0123456789abcdef",
        "ticket_key": "prometheus:0123456789abcdef",
        "integration_id": 1,
        "source": "prometheus",
        "title": "Disk usage above 90% on db-1",
        "description": "",
        "severity": "high",
        "labels": {"alertname": "DiskFull"},
        "annotations": {},
        "state": "firing",
        "first_fired_at": NOW,
        "last_fired_at": NOW,
        "resolved_at": None,
        "occurrences": 1,
        "ticket_id": 1,
    },
    "rotations": {
        "id": 1,
        "name": "primary",
        "time_zone": "Europe/Berlin",
        "handoff_weekday": 0,
        "handoff_time": "09:00",
        "shift_hours": 168,
        "anchor_at": NOW,
        "lead_id": 1,
        "ical_token_hash": None,
        "created_at": NOW,
    },
    "rotation_members": {"id": 1, "rotation_id": 1, "user_id": 1, "position": 0},
    "duty_overrides": {
        "id": 1,
        "rotation_id": 1,
        "user_id": 1,
        "starts_at": NOW,
        "ends_at": NOW,
        "reason": "dentist",
        "created_by": "ada",
        "created_at": NOW,
    },
    "notify_channels": {
        "id": 1,
        "name": "ops-slack",
        "kind": "slack",
        "url": "slack://T0/B0/secret",
        "team": "ops",
        "created_at": NOW,
    },
    "contact_methods": {
        "id": 1,
        "user_id": 1,
        "kind": "email",
        "url": "mailto:ada@desk.example",
        "created_at": NOW,
    },
    "contact_lists": {"id": 1, "name": "downtime", "created_at": NOW},
    "quiet_hours": {"user_id": 1, "time_zone": "Europe/Berlin", "starts": "22:00", "ends": "07:00"},
    "contact_list_entries": {"id": 1, "list_id": 1, "user_id": 1, "address": None},
    "escalation_policies": {
        "id": 1,
        "name": "critical",
        "steps": [{"target": "rotation", "name": "primary", "wait_minutes": 5}],
        "repeat": 1,
        "sources": [],
        "severities": ["critical"],
        "position": 100,
        "created_at": NOW,
    },
    "escalations": {
        "id": 1,
        "ticket_id": 1,
        "policy_name": "critical",
        "policy": {"steps": [], "repeat": 1},
        "state": "running",
        "cycle": 1,
        "step": 0,
        "next_at": NOW,
        "started_at": NOW,
        "ended_at": None,
        "end_reason": None,
    },
    "deliveries": {
        "id": 1,
        "ticket_id": 1,
        "subject": "DD-1",
        "target": "user:ada",
        "channel": "email",
        "kind": "email",
        "address": "mailto:ada@desk.example",
        "reason": "first notification",
        "sequence": "c1s1",
        "title": "[DD-1] Disk usage",
        "body": "",
        "critical": True,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": NOW,
        "last_error": None,
        "created_at": NOW,
        "sent_at": None,
    },
    "audit_events": {
        "id": 1,
        "at": NOW,
        "actor": "test",
        "action": "create",
        "object_type": "users",
        "object_id": "1",
        "before": None,
        "after": {"username": "ada"},
        "diff": {"username": [None, "ada"]},
    },
    "change_notices": {
        "id": 1,
        "audit_event_id": 1,
        "risk": "high",
        "told": "at_once",
        "list_name": "changes",
        "digest_day": None,
        "note": "",
        "created_at": NOW,
    },
    "change_digests": {
        "day": NOW.date(),
        "list_name": "changes",
        "changes": 3,
        "note": "",
        "created_at": NOW,
    },
    "log_counts": {"source": "bridge", "minute": NOW, "level": "ERROR", "count": 3},
    "log_error_groups": {
        "id": 1,
        "source": "bridge",
        "key": "0" * 64,
        "level": "ERROR",
        "template": "Timeout after <num> ms",
        "count": 3,
        "first_seen": NOW,
        "last_seen": NOW,
        "last_sample": "Timeout after 30000 ms",
        "samples": ["Timeout after 30000 ms"],
    },
    "log_error_group_counts": {"group_id": 1, "minute": NOW, "count": 3},
    "alarm_rules": {
        "id": 1,
        "name": "errors",
        "kind": "log_threshold",
        "description": "",
        "severity": "high",
        "enabled": True,
        "integration_id": 1,
        "params": {"levels": ["ERROR"], "threshold": 10, "window_minutes": 60},
        "labels": {},
        "state": {},
        "firing": [],
        "last_evaluated_at": NOW,
        "created_by": "ada",
        "created_at": NOW,
    },
    "rule_evaluations": {
        "id": 1,
        "rule_id": 1,
        "at": NOW,
        "instance": "",
        "firing": True,
        "silenced": False,
        "summary": "12 ERROR lines in 60 min >= 10",
        "numbers": {"count": 12},
        "alarm_id": 1,
    },
    "silences": {
        "id": 1,
        "kind": "silence",
        "matchers": {"rule": "errors"},
        "rule_id": 1,
        "starts_at": NOW,
        "ends_at": NOW,
        "reason": "deploy",
        "created_by": "ada",
        "created_at": NOW,
        "start_noticed": False,
        "end_noticed": False,
    },
    "release_windows": {
        "id": 1,
        "name": "weekday mornings",
        "time_zone": "Europe/Amsterdam",
        "days": [0, 1, 2, 3, 4],
        "starts": "08:00",
        "ends": "12:00",
        "created_by": "ada",
        "created_at": NOW,
    },
    "release_templates": {
        "id": 1,
        "name": "deploy",
        "description": "",
        "pipelines": ["build"],
        "silence_matchers": {"service": "app"},
        "window_id": 1,
        "created_by": "ada",
        "created_at": NOW,
        "updated_at": NOW,
    },
    "release_template_steps": {
        "id": 1,
        "template_id": 1,
        "position": 1,
        "name": "Tag",
        "kind": "manual",
        "params": {},
        "skip_for_patch": False,
        "rollback": False,
    },
    "releases": {
        "id": 1,
        "template_id": 1,
        "version": "1.2.0",
        "previous_version": "1.1.0",
        "patch": False,
        "title": "",
        "window_id": 1,
        "planned_start": NOW,
        "planned_end": NOW,
        "state": "done",
        "inputs": {},
        "author_id": 1,
        "silence_id": 1,
        "attached_events": [],
        "created_at": NOW,
        "started_at": NOW,
        "ended_at": NOW,
    },
    "release_step_runs": {
        "id": 1,
        "release_id": 1,
        "position": 1,
        "name": "Tag",
        "kind": "manual",
        "params": {},
        "rollback": False,
        "state": "done",
        "actor": "ada",
        "note": "tagged",
        "signers": [],
        "output": {},
        "override_by": None,
        "override_reason": None,
        "attempts": 1,
        "job_id": None,
        "started_at": NOW,
        "ended_at": NOW,
    },
    "release_events": {
        "id": 1,
        "release_id": 1,
        "at": NOW,
        "actor": "ada",
        "what": "started",
        "step_id": 1,
    },
    "broadcasts": {
        "id": 1,
        "message": "Maintenance tonight",
        "level": "info",
        "starts_at": NOW,
        "ends_at": None,
        "release_id": 1,
        "created_by": "ada",
        "created_at": NOW,
        "ended_by": None,
    },
    "log_sources": {
        "id": 1,
        "name": "bridge",
        "glob": "/var/log/bridge/*.log*",
        "format": "java",
        "enabled": True,
        "scanned": {"/var/log/bridge/a.log": {"size": 10, "mtime": 1.0, "offset": 10}},
        "last_scanned_at": NOW,
        "last_result": {"files": 1, "events": 3},
        "created_by": "ada",
        "created_at": NOW,
    },
    "db_change_targets": {
        "id": 1,
        "name": "reporting",
        "url": "postgresql://db.example:5432/reporting",
        "read_user": "reader",
        "read_password": "gAAAAA-encrypted-placeholder",
        "write_user": "writer",
        "write_password": "gAAAAA-encrypted-placeholder",
        "statement_timeout_ms": 30000,
        "lock_timeout_ms": 5000,
        "backup_target": "",
        "created_by": "ada",
        "created_at": NOW,
        "updated_at": NOW,
        "last_tested_at": None,
        "last_test": None,
    },
    "db_change_runs": {
        "id": 1,
        "change_id": 1,
        "mode": "dry_run",
        "script_sha256": "e" * 64,
        "target_id": 1,
        "ok": True,
        "actor": "olga",
        "started_at": NOW,
        "finished_at": NOW,
        "figures": {"statements": []},
    },
}


def model_tables() -> dict[str, sa.Table]:
    """Every table the models declare."""
    load_domains()
    return dict(Base.metadata.tables)


def insert_a_row_everywhere(url: str) -> None:
    """Put one row in every table (parents first) through the models' table definitions."""
    tables = model_tables()
    engine = build_engine(url)
    try:
        with engine.begin() as connection:
            for table in Base.metadata.sorted_tables:
                connection.execute(sa.insert(tables[table.name]), [ROWS[table.name]])
    finally:
        engine.dispose()


def row_counts(url: str) -> dict[str, int]:
    """How many rows each model table holds."""
    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            return {
                name: int(connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
                for name, table in model_tables().items()
            }
    finally:
        engine.dispose()


def execute_sql(url: str, *statements: str) -> None:
    """Run raw SQL against the database, outside the migrations."""
    engine = build_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


@pytest.fixture
def fresh_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database of `backend` for this test alone."""
    name = request.node.originalname.removeprefix("test_")[:40]
    return fresh_database_url(backend, tmp_path, name)


@pytest.fixture
def drift_engine(fresh_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to head."""
    migrations.upgrade(fresh_url)
    engine = build_engine(fresh_url)
    yield engine
    engine.dispose()


# --- the migration scripts -------------------------------------------------------------------


def test_migration_scripts_have_exactly_one_head() -> None:
    heads = migrations.heads()
    assert len(heads) == 1, f"the migrations have {len(heads)} heads {heads}; merge them"
    assert heads[0] == revisions_base_to_head()[-1].revision


def _does_something(function: Any) -> bool:
    """Whether a function's body is more than a docstring, `pass` or `...`."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    return any(
        not isinstance(statement, ast.Pass)
        and not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))
        for statement in body
    )


def test_every_revision_has_a_downgrade() -> None:
    scripts = revisions_base_to_head()
    assert scripts, "no migration scripts found"
    for script in scripts:
        downgrade = getattr(script.module, "downgrade", None)
        assert callable(downgrade), f"revision {script.revision} has no downgrade()"
        assert _does_something(downgrade), f"revision {script.revision}'s downgrade() is empty"


# --- up, down and up again ---------------------------------------------------------------------


def test_every_model_table_has_a_sample_row_for_the_round_trip_test() -> None:
    assert set(model_tables()) == set(ROWS), (
        "add a row for each new table to ROWS so the downgrade-with-data test covers it"
    )


def test_upgrade_downgrade_and_upgrade_again_with_data_present(fresh_url: str) -> None:
    migrations.upgrade(fresh_url)
    assert revision_at(fresh_url) == migrations.heads()[0]
    assert app_tables(fresh_url) == set(model_tables())
    insert_a_row_everywhere(fresh_url)
    assert row_counts(fresh_url) == dict.fromkeys(ROWS, 1)

    migrations.downgrade(fresh_url, "base")
    assert app_tables(fresh_url) == set()
    assert revision_at(fresh_url) is None

    migrations.upgrade(fresh_url)
    assert revision_at(fresh_url) == migrations.heads()[0]
    assert row_counts(fresh_url) == dict.fromkeys(ROWS, 0)
    insert_a_row_everywhere(fresh_url)
    assert row_counts(fresh_url) == dict.fromkeys(ROWS, 1)


def test_each_revision_upgrades_and_downgrades_one_step_at_a_time(fresh_url: str) -> None:
    scripts = revisions_base_to_head()
    schemas: dict[str | None, dict[str, Any]] = {None: schema_of(fresh_url)}
    assert schemas[None] == {}

    for script in scripts:
        assert revision_at(fresh_url) == script.down_revision
        migrations.upgrade(fresh_url, "+1")
        assert revision_at(fresh_url) == script.revision
        schemas[script.revision] = schema_of(fresh_url)
    assert revision_at(fresh_url) == migrations.heads()[0]

    for script in reversed(scripts):
        migrations.downgrade(fresh_url, "-1")
        below = script.down_revision
        assert isinstance(below, str | None), "step-wise test assumes a linear history"
        assert revision_at(fresh_url) == below
        assert schema_of(fresh_url) == schemas[below], (
            f"downgrading {script.revision} does not restore the schema of {below or 'base'}"
        )


# --- models and migrations agree ---------------------------------------------------------------


def test_models_match_the_migrated_schema(drift_engine: Engine) -> None:
    assert migrations.model_drift(drift_engine) == []


def _drift_names(drift: list[Any]) -> list[tuple[str, str]]:
    """(operation, object name) for each difference, flattening modify groups."""
    names = []
    for entry in drift:
        for item in entry if isinstance(entry, list) else [entry]:
            operation = item[0]
            if operation in {"add_column", "remove_column"}:
                names.append((operation, f"{item[2]}.{item[3].name}"))
            elif operation in {"add_table", "remove_table", "add_index", "remove_index"}:
                names.append((operation, str(item[1].name)))
            else:
                names.append((operation, repr(item)))
    return names


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("ALTER TABLE users DROP COLUMN email", ("add_column", "users.email")),
        (
            "CREATE TABLE stray_notes (id INTEGER PRIMARY KEY, body TEXT)",
            ("remove_table", "stray_notes"),
        ),
        ("DROP INDEX ix_jobs_kind", ("add_index", "ix_jobs_kind")),
    ],
    ids=["dropped-column", "extra-table", "dropped-index"],
)
def test_model_drift_reports_a_schema_changed_behind_the_migrations_back(
    drift_engine: Engine, fresh_url: str, sql: str, expected: tuple[str, str]
) -> None:
    execute_sql(fresh_url, sql)
    assert expected in _drift_names(migrations.model_drift(drift_engine))


# --- SQLite connection settings ----------------------------------------------------------------


def test_sqlite_engine_uses_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    url = fresh_database_url("sqlite", tmp_path, "pragmas")
    migrations.upgrade(url)
    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            busy = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
            assert busy == sqlite_busy_timeout_ms() == 15_000
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        # Foreign keys are enforced, not merely declared: a token of a missing user is refused.
        tokens = model_tables()["api_tokens"]
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(sa.insert(tokens), [{**ROWS["api_tokens"], "user_id": 999}])
    finally:
        engine.dispose()
    # WAL is a property of the file: any other process opening it sees it too.
    path = make_url(url).database
    assert path is not None
    plain = sqlite3.connect(path)
    try:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        plain.close()


def test_desk_engine_on_the_default_sqlite_database_is_in_wal_mode(home: Path) -> None:
    with get_engine().connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert (home / "dutydesk.sqlite").exists()


# --- `dutydesk db ...` -------------------------------------------------------------------------


@pytest.fixture
def cli_url(fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fresh database, configured as the desk's ops database."""
    monkeypatch.setenv("DUTYDESK_DATABASE_URL", fresh_url)
    clear_caches()
    return fresh_url


def dutydesk(*args: str) -> Result:
    """Run `dutydesk ARGS` in-process."""
    return CliRunner().invoke(app, list(args))


def test_db_commands_report_an_empty_database_as_not_migrated(cli_url: str) -> None:
    current = dutydesk("db", "current")
    assert current.exit_code == 0, current.output
    assert current.stdout.strip() == "(empty: never migrated)"

    check = dutydesk("db", "check")
    assert check.exit_code == 1
    head = migrations.heads()[0]
    assert f"database is at nothing, newest is {head}" in check.stderr


def test_db_upgrade_brings_the_database_to_head_and_check_passes(cli_url: str) -> None:
    upgrade = dutydesk("db", "upgrade")
    assert upgrade.exit_code == 0, upgrade.output
    head = migrations.heads()[0]
    assert revision_at(cli_url) == head

    current = dutydesk("db", "current")
    assert current.exit_code == 0, current.output
    assert current.stdout.strip() == head

    check = dutydesk("db", "check")
    assert check.exit_code == 0, check.output
    assert f"ok: at {head}" in check.stdout


def test_db_upgrade_is_safe_to_run_twice(cli_url: str) -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    again = dutydesk("db", "upgrade")
    assert again.exit_code == 0, again.output
    assert dutydesk("db", "check").exit_code == 0


def test_db_check_fails_naming_the_drift_when_the_schema_was_changed_by_hand(
    cli_url: str,
) -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    execute_sql(cli_url, "ALTER TABLE users DROP COLUMN email")

    check = dutydesk("db", "check")
    assert check.exit_code == 1
    assert "models and database differ" in check.stderr
    assert "add_column" in check.stderr
    assert "'users'" in check.stderr
    assert "email" in check.stderr
