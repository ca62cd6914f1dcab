"""What a chatbot imports to record its turns and ratings.

    from chatlake.telemetry import TelemetryClient, new_chat_turn

    telemetry = TelemetryClient()          # settings from the environment
    telemetry.track(new_chat_turn(user_message=q, assistant_message=a))

Errors: every exception raised on purpose derives from
``chatlake.errors.ChatlakeError``; ``track()`` itself never raises.
"""

from chatlake.telemetry.backlog import Backlog, read_backlog
from chatlake.telemetry.client import TelemetryClient, TelemetryStatus
from chatlake.telemetry.config import TelemetryConfig
from chatlake.telemetry.events import (
    ChatTurn,
    Feedback,
    TurnTimer,
    new_chat_turn,
    new_feedback,
)

__all__ = [
    "Backlog",
    "ChatTurn",
    "Feedback",
    "TelemetryClient",
    "TelemetryConfig",
    "TelemetryStatus",
    "TurnTimer",
    "new_chat_turn",
    "new_feedback",
    "read_backlog",
]
