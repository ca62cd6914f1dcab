"""The chat page's callbacks.

One controller callback owns the conversation's state (which conversation,
which turn is running, whether the page polls), so sending, polling, stopping,
retrying and switching conversations never race each other over shared outputs.
Ratings have their own per-turn callback. Polls read turns through
ChatService.turns, which ends a turn whose worker process died, so the page
never waits for good on a turn nobody streams.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import dash
from dash import ALL, MATCH, Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate

from chatlake.app import layout
from chatlake.app import store as st
from chatlake.app.errors import AppError, NotFound
from chatlake.app.turns import ChatService

logger = logging.getLogger(__name__)

STOP_SHOWN, STOP_HIDDEN = "stop", "stop hidden"
# An id carrying a lone UTF-16 surrogate cannot even be looked up in SQLite.
INVALID_TEXT = "the request holds text that is not valid Unicode; nothing was changed"

# result key -> (component id, property) of the controller's outputs.
_OUTPUTS = {
    "messages": ("messages", "children"),
    "conversation-id": ("conversation-id", "data"),
    "active-turn": ("active-turn", "data"),
    "poll-disabled": ("poll", "disabled"),
    "question": ("question", "value"),
    "question-disabled": ("question", "disabled"),
    "send-disabled": ("send", "disabled"),
    "stop-class": ("stop", "className"),
    "chat-error": ("chat-error", "children"),
    "sidebar-version": ("sidebar-version", "data"),
    "rendered": ("rendered", "data"),
}


def register(app: dash.Dash, service: ChatService, user_id: Callable[[], str]) -> None:
    """Wires the chat page to ``service``; ``user_id()`` names the current browser."""
    controller = _Controller(service, user_id)

    app.callback(
        [Output(c, p) for c, p in _OUTPUTS.values()],
        Input("send", "n_clicks"),
        Input("question", "n_submit"),
        Input({"type": "suggestion", "index": ALL}, "n_clicks"),
        Input({"type": "retry", "turn": ALL}, "n_clicks"),
        Input("poll", "n_intervals"),
        Input("stop", "n_clicks"),
        Input("new-chat", "n_clicks"),
        Input({"type": "conversation", "id": ALL}, "n_clicks"),
        State("question", "value"),
        State("conversation-id", "data"),
        State("active-turn", "data"),
        State("sidebar-version", "data"),
        State("rendered", "data"),
        prevent_initial_call=True,
    )(controller.dispatch)

    @app.callback(
        Output("conversation-list", "children"),
        Input("sidebar-version", "data"),
        State("conversation-id", "data"),
    )
    def sidebar(_version, conversation_id):
        conversations = service.store.conversations(user_id())
        return layout.conversation_list(conversations, conversation_id)

    @app.callback(
        Output({"type": "rate-up", "turn": MATCH}, "className"),
        Output({"type": "rate-down", "turn": MATCH}, "className"),
        Output({"type": "rate-note", "turn": MATCH}, "children"),
        Input({"type": "rate-up", "turn": MATCH}, "n_clicks"),
        Input({"type": "rate-down", "turn": MATCH}, "n_clicks"),
        Input({"type": "comment-send", "turn": MATCH}, "n_clicks"),
        State({"type": "comment", "turn": MATCH}, "value"),
        prevent_initial_call=True,
    )
    def rate(_up, _down, _send, comment):
        if not ctx.triggered or not ctx.triggered[0]["value"]:
            raise PreventUpdate
        trigger = ctx.triggered_id
        try:
            turn = service.owned_turn(user_id(), trigger["turn"])
            rating = {"rate-up": 1, "rate-down": -1}.get(trigger["type"], turn.rating)
            if rating is None:
                return no_update, no_update, "rate the answer first, then add a comment"
            service.rate(user_id(), turn.id, rating, comment)
        except AppError as error:  # NotFound included: a stale or foreign turn
            return no_update, no_update, str(error)
        except UnicodeEncodeError:
            return no_update, no_update, INVALID_TEXT
        saved = service.store.turn(turn.id)
        up, down = layout.rating_classes(saved.rating)
        return up, down, layout.rating_note(saved.rating, saved.comment)


class _Controller:
    def __init__(self, service: ChatService, user_id: Callable[[], str]) -> None:
        self.service = service
        self.user_id = user_id

    def dispatch(self, *args):
        question, conversation_id, active_turn, version, rendered = args[-5:]
        trigger = ctx.triggered_id
        if not _really_clicked():
            raise PreventUpdate
        try:
            if trigger == "poll":
                result = self.poll(conversation_id, active_turn, rendered)
            elif trigger == "stop":
                result = self.stop(active_turn)
            elif trigger == "new-chat":
                result = self.new_chat(version)
            elif isinstance(trigger, dict) and trigger["type"] == "conversation":
                result = self.open(trigger["id"], version)
            elif isinstance(trigger, dict) and trigger["type"] == "retry":
                result = self.retry(trigger["turn"], active_turn)
            else:
                text = question
                if isinstance(trigger, dict) and trigger["type"] == "suggestion":
                    text = layout.SUGGESTIONS[trigger["index"]]
                result = self.send(text, conversation_id, active_turn, version)
        except AppError as error:  # NotFound included
            result = {"chat-error": str(error)}
        except UnicodeEncodeError:
            result = {"chat-error": INVALID_TEXT}
        return [result.get(key, no_update) for key in _OUTPUTS]

    def send(self, text, conversation_id, active_turn, version) -> dict:
        if active_turn:
            raise AppError("wait for the answer or stop it first")
        turn = self.service.begin(self.user_id(), conversation_id, text or "")
        self.service.submit(self.user_id(), turn)
        return {
            **self._running(turn.id),
            "messages": layout.messages(self.service.store.turns(turn.conversation_id)),
            "conversation-id": turn.conversation_id,
            "question": "",
            "sidebar-version": (version or 0) + 1,
        }

    def retry(self, turn_id, active_turn) -> dict:
        if active_turn:
            raise AppError("wait for the answer or stop it first")
        turn = self.service.retry(self.user_id(), turn_id)
        self.service.submit(self.user_id(), turn)
        turns = self.service.store.turns(turn.conversation_id)
        return {**self._running(turn.id), "messages": layout.messages(turns)}

    def poll(self, conversation_id, active_turn, rendered) -> dict:
        if not active_turn or not conversation_id:
            return self._idle()
        try:
            turns = self.service.turns(self.user_id(), conversation_id)
        except NotFound as error:  # stale or foreign: stop polling it
            return {**self._idle(), "chat-error": str(error)}
        (turn,) = [t for t in turns if t.id == active_turn] or [None]
        running = turn is not None and turn.status == st.RUNNING
        # Nothing new since the last tick: send nothing rather than every message.
        signature = None if turn is None else _signature(turn)
        if running and signature == rendered:
            raise PreventUpdate
        result = {"messages": layout.messages(turns), "rendered": signature}
        return result if running else {**result, **self._idle()}

    def stop(self, active_turn) -> dict:
        if active_turn:
            self.service.stop(self.user_id(), active_turn)
        return {}

    def new_chat(self, version) -> dict:
        return {
            **self._idle(),
            "messages": [layout.welcome()],
            "conversation-id": None,
            "sidebar-version": (version or 0) + 1,
        }

    def open(self, conversation_id, version) -> dict:
        turns = self.service.turns(self.user_id(), conversation_id)
        running = [t.id for t in turns if t.status == st.RUNNING]
        state = self._running(running[-1]) if running else self._idle()
        return {
            **state,
            "messages": layout.messages(turns),
            "conversation-id": conversation_id,
            "sidebar-version": (version or 0) + 1,
        }

    @staticmethod
    def _running(turn_id: str) -> dict:
        return {
            "active-turn": turn_id,
            "poll-disabled": False,
            "question": "",
            "question-disabled": True,
            "send-disabled": True,
            "stop-class": STOP_SHOWN,
            "chat-error": "",
        }

    @staticmethod
    def _idle() -> dict:
        return {
            "active-turn": None,
            "poll-disabled": True,
            "question-disabled": False,
            "send-disabled": False,
            "stop-class": STOP_HIDDEN,
            "chat-error": "",
        }


def _signature(turn: st.Turn) -> str:
    return f"{turn.id}:{len(turn.assistant_message)}:{turn.status}"


def _really_clicked() -> bool:
    # Pattern-matching inputs also fire when their buttons are first rendered,
    # with n_clicks None; only a real click or a poll tick counts.
    return bool(ctx.triggered) and bool(ctx.triggered[0]["value"])
