"""Identifiers shared by the Block Kit builders (formatting/) and the Bolt listeners (bot/).

Every button carries the run id as its `value`, so a click can be served by any replica after a
restart: everything else is loaded from the store.
"""

ACTION_PACKET = "triage_packet"
ACTION_KB = "triage_kb"
ACTION_REPLY = "triage_reply"
ACTION_RERUN = "triage_rerun"
ACTION_FEEDBACK_UP = "triage_feedback_up"
ACTION_FEEDBACK_DOWN = "triage_feedback_down"
ACTION_OPEN_TICKET = "triage_open_ticket"  # a link button; Slack still sends an action, which is acked

VIEW_REPLY = "triage_reply_modal"  # private_metadata = run id
VIEW_FEEDBACK = "triage_feedback_modal"  # private_metadata = run id

REPLY_BLOCK = "reply_body"
REPLY_INPUT = "reply_text"
FEEDBACK_BLOCK = "feedback_body"
FEEDBACK_INPUT = "feedback_text"

ALL_BUTTON_ACTIONS = (
    ACTION_PACKET,
    ACTION_KB,
    ACTION_REPLY,
    ACTION_RERUN,
    ACTION_FEEDBACK_UP,
    ACTION_FEEDBACK_DOWN,
)

# The paste modal (`/triage` with no arguments): private_metadata = JSON {"channel": …} of the command
VIEW_PASTE = "triage_paste_modal"
PASTE_BLOCK = "paste_body"
PASTE_INPUT = "paste_text"
PASTE_TICKET_BLOCK = "paste_ticket"
PASTE_TICKET_INPUT = "paste_ticket_id"

SHORTCUT_TRIAGE_MESSAGE = (
    "triage_message"  # the message shortcut "Triage this message" (manifest callback_id)
)
