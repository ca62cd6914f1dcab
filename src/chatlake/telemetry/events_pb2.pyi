from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ChatTurn(_message.Message):
    __slots__ = ("telemetry_id", "event_time", "session_id", "user_id", "turn_index", "app_name", "app_version", "endpoint", "model", "user_message", "assistant_message", "response_time_ms", "ttft_ms", "input_tokens", "output_tokens", "finish_reason", "status", "error_type", "error_message", "request_id")
    TELEMETRY_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    APP_NAME_FIELD_NUMBER: _ClassVar[int]
    APP_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    TTFT_MS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    telemetry_id: str
    event_time: int
    session_id: str
    user_id: str
    turn_index: int
    app_name: str
    app_version: str
    endpoint: str
    model: str
    user_message: str
    assistant_message: str
    response_time_ms: int
    ttft_ms: int
    input_tokens: int
    output_tokens: int
    finish_reason: str
    status: str
    error_type: str
    error_message: str
    request_id: str
    def __init__(self, telemetry_id: _Optional[str] = ..., event_time: _Optional[int] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., turn_index: _Optional[int] = ..., app_name: _Optional[str] = ..., app_version: _Optional[str] = ..., endpoint: _Optional[str] = ..., model: _Optional[str] = ..., user_message: _Optional[str] = ..., assistant_message: _Optional[str] = ..., response_time_ms: _Optional[int] = ..., ttft_ms: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., finish_reason: _Optional[str] = ..., status: _Optional[str] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class Feedback(_message.Message):
    __slots__ = ("feedback_id", "telemetry_id", "event_time", "session_id", "user_id", "rating", "comment")
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    feedback_id: str
    telemetry_id: str
    event_time: int
    session_id: str
    user_id: str
    rating: int
    comment: str
    def __init__(self, feedback_id: _Optional[str] = ..., telemetry_id: _Optional[str] = ..., event_time: _Optional[int] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., rating: _Optional[int] = ..., comment: _Optional[str] = ...) -> None: ...
