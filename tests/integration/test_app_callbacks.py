"""The app's Dash endpoints with hand-made requests, as a hostile or stale client
could send them: each gets a clear message, and nothing changes.
"""

from __future__ import annotations

import json

import pytest

from chatlake.app.model_client import ModelClient
from chatlake.app.server import IDENTITY_COOKIE, AppParts, create_app
from chatlake.app.settings import AppSettings, ModelSettings
from chatlake.app.store import ConversationStore
from chatlake.app.telemetry_sink import TelemetrySink
from chatlake.app.turns import ChatService

CONTROLLER = (
    "..messages.children...conversation-id.data...active-turn.data...poll.disabled"
    "...question.value...question.disabled...send.disabled...stop.className"
    "...chat-error.children...sidebar-version.data...rendered.data.."
)
RATE = (
    '..{"turn":["MATCH"],"type":"rate-up"}.className'
    '...{"turn":["MATCH"],"type":"rate-down"}.className'
    '...{"turn":["MATCH"],"type":"rate-note"}.children..'
)
OWNER, STRANGER = "a" * 32, "b" * 32


@pytest.fixture
def app_parts(tmp_path):
    settings = AppSettings(tmp_path)
    model = ModelSettings.from_env(
        {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "CHATLAKE_MODEL": "m"}
    )
    store = ConversationStore(settings.store_path)
    service = ChatService(store, ModelClient(model), TelemetrySink(None), settings)
    return AppParts(settings, model, service)


@pytest.fixture
def client(app_parts):
    return create_app(app_parts).server.test_client()


def _prop(component_id, prop, value):
    return {"id": component_id, "property": prop, "value": value}


def _changed(component_id, prop):
    if isinstance(component_id, dict):
        component_id = json.dumps(component_id, sort_keys=True, separators=(",", ":"))
    return f"{component_id}.{prop}"


def controller_request(trigger_index, trigger, state):
    inputs = [
        _prop("send", "n_clicks", None),
        _prop("question", "n_submit", None),
        [],
        [],
        _prop("poll", "n_intervals", None),
        _prop("stop", "n_clicks", None),
        _prop("new-chat", "n_clicks", None),
        [],
    ]
    inputs[trigger_index] = trigger
    changed = trigger[0] if isinstance(trigger, list) else trigger
    return {
        "output": CONTROLLER,
        "outputs": [
            {"id": spec.split(".")[0], "property": spec.split(".")[1]}
            for spec in CONTROLLER.strip(".").split("...")
        ],
        "inputs": inputs,
        "changedPropIds": [_changed(changed["id"], changed["property"])],
        "state": [
            _prop("question", "value", state.get("question")),
            _prop("conversation-id", "data", state.get("conversation")),
            _prop("active-turn", "data", state.get("active")),
            _prop("sidebar-version", "data", 0),
            _prop("rendered", "data", None),
        ],
    }


def post(client, body, user=OWNER):
    client.set_cookie(IDENTITY_COOKIE, user)
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == 200, response.data
    return response.get_json()["response"]


def test_first_visit_gets_an_identity_cookie(client):
    response = client.get("/")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{IDENTITY_COOKIE}=") and "HttpOnly" in cookie


def test_opening_someone_elses_conversation_is_refused(client, app_parts):
    theirs = app_parts.service.store.create_conversation(OWNER, "private question")
    trigger = [_prop({"type": "conversation", "id": theirs.id}, "n_clicks", 1)]
    response = post(client, controller_request(7, trigger, {}), user=STRANGER)
    assert response["chat-error"]["children"] == f"conversation {theirs.id!r} not found"
    assert "messages" not in response


def test_sending_into_someone_elses_conversation_changes_nothing(client, app_parts):
    store = app_parts.service.store
    theirs = store.create_conversation(OWNER, "private question")
    trigger = _prop("send", "n_clicks", 1)
    state = {"question": "hello", "conversation": theirs.id}
    response = post(client, controller_request(0, trigger, state), user=STRANGER)
    assert response["chat-error"]["children"] == f"conversation {theirs.id!r} not found"
    assert store.turns(theirs.id) == []


def test_empty_question_is_refused_with_a_message(client, app_parts):
    trigger = _prop("send", "n_clicks", 1)
    response = post(client, controller_request(0, trigger, {"question": "   "}))
    assert response["chat-error"]["children"] == "type a question first"
    assert app_parts.service.store.conversations(OWNER) == []


def rate_request(turn_id, kind="rate-up", comment=""):
    turn = {"type": kind, "turn": turn_id}
    return {
        "output": RATE,
        "outputs": [
            {"id": {"type": kind, "turn": turn_id}, "property": prop}
            for kind, prop in (
                ("rate-up", "className"),
                ("rate-down", "className"),
                ("rate-note", "children"),
            )
        ],
        "inputs": [
            _prop({"type": k, "turn": turn_id}, "n_clicks", 1 if k == kind else None)
            for k in ("rate-up", "rate-down", "comment-send")
        ],
        "changedPropIds": [_changed(turn, "n_clicks")],
        "state": [_prop({"type": "comment", "turn": turn_id}, "value", comment)],
    }


def rate_note(response) -> str:
    (note,) = [v for v in response.values() if "children" in v]
    return note["children"]


def test_rating_a_turn_that_does_not_exist_is_a_message(client):
    response = post(client, rate_request("no-such-turn"))
    assert rate_note(response) == "turn 'no-such-turn' not found"


def finished_turn(store, user, question="q"):
    conversation = store.create_conversation(user, question)
    turn = store.start_turn(conversation.id, question)
    store.finish_turn(turn.id, status="ok", text="a", finish_reason="stop")
    return turn


@pytest.mark.parametrize("kind", ["rate-up", "comment-send"])
def test_rating_someone_elses_turn_reveals_nothing_of_it(client, app_parts, kind):
    store = app_parts.service.store
    theirs = finished_turn(store, OWNER, "private question")
    response = post(client, rate_request(theirs.id, kind, "mine now"), user=STRANGER)
    assert rate_note(response) == f"turn {theirs.id!r} not found"
    assert theirs.conversation_id not in json.dumps(response)
    saved = store.turn(theirs.id)
    assert (saved.rating, saved.comment) == (None, None)


def test_polling_someone_elses_conversation_stops_the_poll(client, app_parts):
    theirs = finished_turn(app_parts.service.store, OWNER, "private question")
    trigger = _prop("poll", "n_intervals", 3)
    state = {"conversation": theirs.conversation_id, "active": theirs.id}
    response = post(client, controller_request(4, trigger, state), user=STRANGER)
    assert response["chat-error"]["children"] == (
        f"conversation {theirs.conversation_id!r} not found"
    )
    assert response["poll"]["disabled"] is True
    assert "messages" not in response


def test_a_question_with_a_lone_surrogate_is_refused_with_its_position(
    client, app_parts
):
    trigger = _prop("send", "n_clicks", 1)
    response = post(client, controller_request(0, trigger, {"question": "hi \ud800"}))
    assert response["chat-error"]["children"] == (
        "the question holds an invalid character (a lone UTF-16 surrogate, U+D800) "
        "at position 4; retype it"
    )
    assert app_parts.service.store.conversations(OWNER) == []


def test_ids_with_a_lone_surrogate_are_refused_without_a_500(client, app_parts):
    trigger = _prop("send", "n_clicks", 1)
    state = {"question": "hello", "conversation": "c\udfff"}
    response = post(client, controller_request(0, trigger, state))
    assert response["chat-error"]["children"] == (
        "the request holds text that is not valid Unicode; nothing was changed"
    )
    assert rate_note(post(client, rate_request("t\ud800"))) == (
        "the request holds text that is not valid Unicode; nothing was changed"
    )
    assert app_parts.service.store.conversations(OWNER) == []


@pytest.mark.parametrize(
    ("comment", "message"),
    [
        (
            "z" * 2001,
            "the comment has 2001 characters; the limit is 2000: "
            "shorten it and send it again",
        ),
        (
            "bad \udc80",
            "the comment holds an invalid character (a lone UTF-16 surrogate, "
            "U+DC80) at position 5; retype it",
        ),
    ],
)
def test_a_bad_comment_is_refused_and_the_rating_unchanged(
    client, app_parts, comment, message
):
    store = app_parts.service.store
    conversation = store.create_conversation(OWNER, "q")
    turn = store.start_turn(conversation.id, "q")
    store.finish_turn(turn.id, status="ok", text="a", finish_reason="stop")
    request = rate_request(turn.id, "rate-down", comment)
    assert rate_note(post(client, request)) == message
    saved = store.turn(turn.id)
    assert (saved.rating, saved.comment) == (None, None)


def test_huge_requests_are_refused(client, app_parts):
    body = controller_request(
        0, _prop("send", "n_clicks", 1), {"question": "x" * 3_000_000}
    )
    client.set_cookie(IDENTITY_COOKIE, OWNER)
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == 413
    assert app_parts.service.store.conversations(OWNER) == []


def test_long_question_is_refused_with_its_length(client, app_parts):
    trigger = _prop("send", "n_clicks", 1)
    response = post(client, controller_request(0, trigger, {"question": "y" * 9000}))
    assert response["chat-error"]["children"] == (
        "the question has 9000 characters; the limit is 8000"
    )
    assert app_parts.service.store.conversations(OWNER) == []
