"""The two tables every chatbot gets: one row per turn, one row per rating.

The column lists here are the single source of truth. ``chatlake up`` creates
the tables from them, and the telemetry ``.proto`` must describe the same
columns (a unit test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

INGESTION_TIME_PROPERTY = "chatlake.ingestion_time"
DEDUPE_KEY_PROPERTY = "chatlake.dedupe_key"


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: str
    properties: dict[str, str] = field(default_factory=dict)
    comment: str = ""


CHAT_EVENTS = TableSpec(
    name="chat_events",
    columns=(
        "telemetry_id STRING NOT NULL, event_time TIMESTAMP NOT NULL, "
        "ingestion_time TIMESTAMP, session_id STRING, user_id STRING, "
        "turn_index INT, app_name STRING, app_version STRING, endpoint STRING, "
        "model STRING, user_message STRING, assistant_message STRING, "
        "response_time_ms BIGINT, ttft_ms BIGINT, input_tokens INT, "
        "output_tokens INT, finish_reason STRING, status STRING, "
        "error_type STRING, error_message STRING, request_id STRING"
    ),
    properties={
        INGESTION_TIME_PROPERTY: "ingestion_time",
        DEDUPE_KEY_PROPERTY: "telemetry_id",
    },
    comment="One row per chatbot turn, successful or failed.",
)

FEEDBACK = TableSpec(
    name="feedback",
    columns=(
        "feedback_id STRING NOT NULL, telemetry_id STRING NOT NULL, "
        "event_time TIMESTAMP NOT NULL, ingestion_time TIMESTAMP, "
        "session_id STRING, user_id STRING, rating INT NOT NULL, comment STRING"
    ),
    properties={
        INGESTION_TIME_PROPERTY: "ingestion_time",
        DEDUPE_KEY_PROPERTY: "feedback_id",
    },
    comment="One row per thumbs-up or thumbs-down; the last rating of a turn wins.",
)

CHAT_TABLES = (CHAT_EVENTS, FEEDBACK)
