"""Dash components of the chatbot page: header, sidebar, messages, composer.

Pure functions from store records to components, so the callbacks stay small
and the rendering can be tested without a browser.
"""

from __future__ import annotations

from dash import dcc, html

from chatlake.app import store as st
from chatlake.app.store import Conversation, Turn
from chatlake.app.turns import MAX_COMMENT_CHARS

POLL_INTERVAL_MS = 150
STATUS_INTERVAL_MS = 2000
CURSOR = "▍"

SUGGESTIONS = (
    "How do I start chatlake?",
    "What does the chat_events table hold?",
    "How does telemetry reach Delta Lake?",
    "How do I query the tables with SQL?",
)


def header(model_label: str, is_demo: bool) -> html.Header:
    badge = "model-badge demo" if is_demo else "model-badge"
    return html.Header(
        className="app-header",
        children=[
            html.Div("chatlake", className="brand"),
            html.Nav(
                className="nav",
                children=[
                    dcc.Link("Chat", href="/"),
                    dcc.Link("Dashboard", href="/dashboard"),
                    dcc.Link("Ingestion", href="/ingestion"),
                ],
            ),
            html.Div(
                className="header-status",
                children=[
                    html.Span(
                        f"model: {model_label}", id="model-label", className=badge
                    ),
                    html.Span(
                        "telemetry: …", id="telemetry-status", className="telemetry"
                    ),
                ],
            ),
            dcc.Interval(id="status-poll", interval=STATUS_INTERVAL_MS),
        ],
    )


def chat_page() -> html.Div:
    return html.Div(
        className="chat-page",
        children=[
            dcc.Store(id="conversation-id"),
            dcc.Store(id="active-turn"),
            dcc.Store(id="sidebar-version", data=0),
            dcc.Store(id="rendered"),
            dcc.Interval(id="poll", interval=POLL_INTERVAL_MS, disabled=True),
            html.Aside(
                className="sidebar",
                children=[
                    html.Button("+ New chat", id="new-chat", className="new-chat"),
                    html.Div("Conversations", className="sidebar-title"),
                    html.Div(id="conversation-list", className="conversation-list"),
                ],
            ),
            html.Main(
                className="chat-main",
                children=[
                    html.Div(welcome(), id="messages", className="messages"),
                    html.Div(id="chat-error", className="chat-error"),
                    composer(),
                ],
            ),
        ],
    )


def composer() -> html.Div:
    return html.Div(
        className="composer",
        children=[
            dcc.Input(
                id="question",
                type="text",
                placeholder="Ask a question…",
                autoComplete="off",
                debounce=False,
                className="question",
            ),
            html.Button("Send", id="send", className="send"),
            html.Button("Stop", id="stop", className="stop hidden"),
        ],
    )


def welcome() -> html.Div:
    buttons = [
        html.Button(text, id={"type": "suggestion", "index": i}, className="suggestion")
        for i, text in enumerate(SUGGESTIONS)
    ]
    return html.Div(
        className="welcome",
        children=[
            html.H2("Ask chatlake"),
            html.P("Every turn and every rating lands in Delta Lake tables."),
            html.Div(buttons, className="suggestions"),
        ],
    )


def conversation_list(conversations: list[Conversation], current: str | None) -> list:
    if not conversations:
        return [html.Div("No conversations yet", className="empty")]
    return [
        html.Button(
            c.title,
            id={"type": "conversation", "id": c.id},
            className="conversation current" if c.id == current else "conversation",
            title=c.title,
        )
        for c in conversations
    ]


def messages(turns: list[Turn]) -> list:
    if not turns:
        return [welcome()]
    rendered: list = []
    for turn in turns:
        rendered.append(html.Div(turn.user_message, className="message user"))
        rendered.append(answer(turn))
    return rendered


def answer(turn: Turn) -> html.Div:
    if turn.status == st.ERROR:
        return error_bubble(turn)
    text = turn.assistant_message
    if turn.status == st.RUNNING:
        text = f"{text}{CURSOR}"
    children: list = [dcc.Markdown(text, className="markdown", link_target="_blank")]
    if turn.status == st.STOPPED:
        children.append(html.Div("stopped", className="note"))
    if turn.status != st.RUNNING:
        children.append(feedback_bar(turn))
    return html.Div(
        children, className="message assistant", **{"data-status": turn.status}
    )


def error_title(error_type: str | None) -> str:
    """What went wrong, in the bubble's first line."""
    if error_type == "interrupted":
        # The app's own worker stopped (a restart, a killed process): not the model.
        return "The app stopped during this turn."
    return f"The model endpoint failed ({error_type})."


def error_bubble(turn: Turn) -> html.Div:
    return html.Div(
        className="message assistant error",
        **{"data-status": turn.status},
        children=[
            html.Div(error_title(turn.error_type), className="title"),
            html.Div(turn.error_message or "", className="detail"),
            html.Button(
                "Retry", id={"type": "retry", "turn": turn.id}, className="retry"
            ),
        ],
    )


def rating_classes(rating: int | None) -> tuple[str, str]:
    up = "rate up active" if rating == 1 else "rate up"
    down = "rate down active" if rating == -1 else "rate down"
    return up, down


def rating_note(rating: int | None, comment: str | None) -> str:
    if rating is None:
        return ""
    word = "helpful" if rating == 1 else "not helpful"
    return f"rated {word}" + (" with a comment" if comment else "")


def feedback_bar(turn: Turn) -> html.Div:
    up, down = rating_classes(turn.rating)
    return html.Div(
        className="feedback",
        children=[
            html.Button(
                "▲ Helpful",
                id={"type": "rate-up", "turn": turn.id},
                className=up,
                title="Helpful",
            ),
            html.Button(
                "▼ Not helpful",
                id={"type": "rate-down", "turn": turn.id},
                className=down,
                title="Not helpful",
            ),
            dcc.Input(
                id={"type": "comment", "turn": turn.id},
                type="text",
                # The browser stops typing at the limit and the placeholder says
                # so; the service refuses longer text rather than cutting it.
                placeholder=f"Optional comment (up to {MAX_COMMENT_CHARS} characters)",
                maxLength=MAX_COMMENT_CHARS,
                className="comment",
                value=turn.comment or "",
            ),
            html.Button(
                "Send comment",
                id={"type": "comment-send", "turn": turn.id},
                className="comment-send",
            ),
            html.Span(
                rating_note(turn.rating, turn.comment),
                id={"type": "rate-note", "turn": turn.id},
                className="rate-note",
            ),
        ],
    )


def placeholder(title: str, module: str) -> html.Div:
    return html.Div(
        className="placeholder",
        children=[
            html.H2(title),
            html.P(f"This page is not available yet: {module} is not installed."),
        ],
    )
