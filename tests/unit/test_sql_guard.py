"""The read-only guard: only queries over three-part catalog tables get through."""

from __future__ import annotations

import pytest

from chatlake.analytics import guard
from chatlake.analytics.errors import ReadOnlyError, SqlSyntaxError


def check(sql: str) -> None:
    for statement in guard.parse(sql):
        guard.check_read_only(statement)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM main.chatbot.chat_events",
        "select model, count(*) from MAIN.Chatbot.chat_events group by model",
        "WITH recent AS (SELECT * FROM main.chatbot.chat_events) SELECT * FROM recent",
        "SELECT * FROM `main`.`chatbot`.`chat_events` AS e JOIN main.chatbot.feedback f"
        " ON f.telemetry_id = e.telemetry_id",
        "SELECT 1 UNION ALL SELECT 2",
        "SELECT * FROM range(10)",
        "(SELECT 1)",
    ],
)
def test_reads_pass(sql: str) -> None:
    check(sql)


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("INSERT INTO main.chatbot.chat_events VALUES (1)", "refused INSERT"),
        ("UPDATE main.chatbot.chat_events SET model = 'x'", "refused UPDATE"),
        ("DELETE FROM main.chatbot.chat_events", "refused DELETE"),
        (
            "MERGE INTO main.a.b t USING main.a.c s ON t.id = s.id "
            "WHEN MATCHED THEN DELETE",
            "refused MERGE",
        ),
        ("CREATE TABLE main.a.b AS SELECT 1", "refused CREATE"),
        ("DROP TABLE main.chatbot.chat_events", "refused DROP"),
        ("ALTER TABLE main.a.b ADD COLUMN c INT", "refused ALTER"),
        ("TRUNCATE TABLE main.a.b", "refused TRUNCATE"),
        ("COPY (SELECT 1) TO '/tmp/out.csv'", "refused COPY"),
        ("ATTACH '/tmp/other.db' AS other", "refused ATTACH"),
        ("DETACH other", "refused DETACH"),
        ("INSTALL httpfs", "refused INSTALL"),
        ("LOAD httpfs", "refused LOAD"),
        ("SET enable_external_access = true", "refused SET"),
        ("PRAGMA enable_profiling", "refused PRAGMA"),
        ("CALL pragma_version()", "refused CALL"),
        ("USE main.chatbot", "refused USE"),
        ("SELECT 1; DROP TABLE main.a.b", "refused DROP"),
        ("SELECT * INTO main.a.copy FROM main.a.b", "refused SELECT INTO"),
        ("SELECT * FROM read_csv('/etc/passwd')", "function read_csv() is not allowed"),
        ("SELECT * FROM read_parquet('/x/*.parquet')", "read_parquet() is not allowed"),
        ("SELECT * FROM read_json_auto('x.json')", "read_json_auto() is not allowed"),
        ("SELECT * FROM glob('/etc/*')", "function glob() is not allowed"),
        ("SELECT * FROM parquet_scan('x')", "parquet_scan() is not allowed"),
        ("SELECT * FROM delta_scan('file:///x')", "delta_scan() is not allowed"),
        ("SELECT * FROM sqlite_scan('x.db', 't')", "sqlite_scan() is not allowed"),
        ("SELECT getenv('HOME')", "function getenv() is not allowed"),
        ("SELECT current_setting('threads')", "current_setting() is not allowed"),
        ("SELECT * FROM query_table('t')", "query_table() is not allowed"),
        ("SELECT * FROM 'https://example.invalid/x.parquet'", "three-part name"),
        ("SELECT * FROM '/etc/passwd'", "three-part name"),
        ("SELECT * FROM parquet.`/tmp/x.parquet`", "three-part name"),
        ("SELECT * FROM chat_events", "three-part name"),
        ("SELECT * FROM chatbot.chat_events", "three-part name"),
        ("SELECT * FROM (SELECT * FROM read_text('/etc/hosts'))", "read_text()"),
        (
            "WITH x AS (SELECT * FROM read_blob('/etc/hosts')) SELECT * FROM x",
            "read_blob()",
        ),
    ],
)
def test_writes_and_outside_reads_are_refused(sql: str, refusal: str) -> None:
    with pytest.raises(ReadOnlyError) as caught:
        check(sql)

    assert refusal in str(caught.value)


def test_refusal_is_checked_before_any_statement_runs() -> None:
    with pytest.raises(ReadOnlyError, match="refused DELETE"):
        check("SELECT 1; SELECT 2; DELETE FROM main.a.b")


@pytest.mark.parametrize(
    ("sql", "where"),
    [("SELECT * FROM", "line 1"), ("SELEC 1", "SQL syntax error"), ("", "no SQL")],
)
def test_syntax_errors_say_where(sql: str, where: str) -> None:
    with pytest.raises(SqlSyntaxError, match=where):
        guard.parse(sql)


def test_table_references_skip_ctes_and_lower_case_names() -> None:
    statement = guard.parse(
        "WITH r AS (SELECT * FROM Main.Chatbot.Chat_Events) "
        "SELECT * FROM r JOIN main.chatbot.feedback f ON true"
    )[0]

    names = sorted(guard.full_name(t) for t in guard.table_references(statement))

    assert names == ["main.chatbot.chat_events", "main.chatbot.feedback"]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "SELECT * FROM a.b.c.d",
            "invalid table name 'a.b.c.d': expected catalog.schema.table (three parts)",
        ),
        ("SELECT * FROM main.chatbot.`chat events`", "invalid table 'chat events'"),
        ("SELECT * FROM main.`chat-bot`.t", "invalid schema 'chat-bot'"),
        ("SELECT * FROM main.chatbot.`tëst`", "invalid table 'tëst'"),
    ],
)
def test_table_names_outside_the_safe_alphabet_are_refused(sql, message) -> None:
    with pytest.raises(SqlSyntaxError) as caught:
        check(sql)

    assert message in str(caught.value)
