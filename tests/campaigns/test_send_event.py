from engagelab.campaigns import plan, read_outbox, send
from engagelab.delivery.outbox import outbox_path
from tests.campaigns.test_personalise import cart_campaign, cart_ws  # noqa: F401


def test_send_renders_the_trigger_event(cart_ws):  # noqa: F811
    p = plan(cart_ws, cart_campaign(), "2026-02-02T09:00:00Z")
    send(cart_ws, p, "ev-1")
    got = {m["user_id"]: m["payload"]["body"] for m in read_outbox(outbox_path(cart_ws, "ev-1"))}
    assert got == {
        "u00000": "Your Hat (19.0 EUR) is waiting",
        "u00001": "Your item (5.0 EUR) is waiting",
        "u00002": "Your Scarf (25.0 EUR) is waiting",
        "u00004": "Your Belt (30.0 EUR) is waiting",
    }
