"""The record store's migrations build what its models describe, both ways, with data present."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from dutydesk import migrations as ops_migrations
from dutydesk.db import Base, build_engine
from dutydesk.records import migrations
from dutydesk.records.models import RecordsBase
from dutydesk.records.store import upgrade_records

TABLES = {"studies", "schemas", "participants", "records", "attachments"}
ROWS: dict[str, dict[str, object]] = {
    "studies": {
        "id": "s",
        "name": "S",
        "disable_export": False,
        "uses_custom_export_schedule": False,
        "study_id_excluded_in_export": False,
        "upload_metadata_fields": [],
        "data_access_team": None,
        "project": "syn1",
    },
    "schemas": {"study_id": "s", "schema_id": "t", "revision": 1, "fields": []},
    "participants": {"study_id": "s", "health_code": "h", "sharing_scope": "NO_SHARING"},
    "records": {
        "id": "r",
        "study_id": "s",
        "health_code": "h",
        "uploaded_on": 1_700_000_000_000,
        "data": {"a": 1},
    },
    "attachments": {
        "id": "a",
        "content": b"x",
        "content_type": "text/plain",
        "size": 1,
        "md5": "m",
    },
}


def tables_of(url: str) -> set[str]:
    engine = build_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def counts(url: str) -> dict[str, int]:
    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            return {
                name: int(connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
                for name, table in RecordsBase.metadata.tables.items()
            }
    finally:
        engine.dispose()


def insert_a_row_everywhere(url: str) -> None:
    engine = build_engine(url)
    try:
        with engine.begin() as connection:
            for table in RecordsBase.metadata.sorted_tables:
                connection.execute(sa.insert(table), [ROWS[table.name]])
    finally:
        engine.dispose()


def test_record_store_migrations_have_one_head_separate_from_the_ops_tree() -> None:
    heads = migrations.heads()
    assert len(heads) == 1, f"the record store's migrations have heads {heads}; merge them"
    assert set(heads).isdisjoint(ops_migrations.heads())
    config = migrations.alembic_config("sqlite://")
    [first] = [
        s for s in ScriptDirectory.from_config(config).walk_revisions() if not s.down_revision
    ]
    assert first.revision == "r0001"


def test_record_tables_live_in_their_own_metadata() -> None:
    assert set(RecordsBase.metadata.tables) == TABLES
    assert not TABLES & set(Base.metadata.tables)


def test_models_match_the_migrated_record_store(records_url: str) -> None:
    engine = build_engine(records_url)
    try:
        assert migrations.model_drift(engine) == []
        assert migrations.current(engine) == migrations.heads()[0]
    finally:
        engine.dispose()
    assert tables_of(records_url) == TABLES | {migrations.VERSION_TABLE}


def test_drift_is_reported_when_a_column_is_dropped_by_hand(records_url: str) -> None:
    engine = build_engine(records_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE records DROP COLUMN day_in_study")
        drift = migrations.model_drift(engine)
    finally:
        engine.dispose()
    assert any(item[0] == "add_column" and item[3].name == "day_in_study" for item in drift)


def test_upgrade_downgrade_and_upgrade_again_with_data_present(empty_records_url: str) -> None:
    upgrade_records(empty_records_url)
    insert_a_row_everywhere(empty_records_url)
    assert counts(empty_records_url) == dict.fromkeys(TABLES, 1)

    migrations.downgrade(empty_records_url, "base")
    assert tables_of(empty_records_url) <= {migrations.VERSION_TABLE}
    assert migrations.pending(empty_records_url)

    upgrade_records(empty_records_url)
    assert counts(empty_records_url) == dict.fromkeys(TABLES, 0)
    insert_a_row_everywhere(empty_records_url)
    assert counts(empty_records_url) == dict.fromkeys(TABLES, 1)
    assert not migrations.pending(empty_records_url)


def test_absent_json_values_are_stored_as_sql_null(records_url: str) -> None:
    insert_a_row_everywhere(records_url)
    engine = build_engine(records_url)
    try:
        with engine.connect() as connection:
            nulls = connection.exec_driver_sql(
                "SELECT count(*) FROM records WHERE metadata IS NULL AND user_data_groups IS NULL"
            ).scalar()
    finally:
        engine.dispose()
    assert nulls == 1
