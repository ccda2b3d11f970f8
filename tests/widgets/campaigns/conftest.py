"""Small simulated workspaces for the campaign widget tests.

``sim_ws``: 1,000 users x 14 days with one saved segment (tests may save campaigns, never
append events). ``sent_ws``: a separate world with three campaigns actually sent (and
answered by the simulator) plus one saved draft, for the reports widget.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engagelab import Workspace
from engagelab.campaigns import Campaign, Goal, Variant, plan, save_campaign, send
from engagelab.segments import prop
from engagelab.simulate import respond
from engagelab.simulate.worlds import simulate_into


@pytest.fixture(scope="module")
def sim_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = Workspace.create(tmp_path_factory.mktemp("cb") / "ws")
    simulate_into(ws, n_users=1000, days=14, seed=11)
    ws.save_segment("over30", prop("age") >= 30)
    yield ws
    ws.close()


def _email(name: str) -> Variant:
    return Variant(name, {"from": "shop@example.com", "subject": f"Offer {name}", "text": "Hi"})


@pytest.fixture(scope="module")
def sent_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = Workspace.create(tmp_path_factory.mktemp("cr") / "ws")
    simulate_into(ws, n_users=800, days=14, seed=12)
    push = Campaign(id="push-promo", name="Weekend promo", channel="push",
                    variants=(Variant("A", {"title": "Sale", "body": "20% off"}),),
                    labels=("Promo",), respect_global_control=False)  # fmt: skip
    mail = Campaign(id="mail-onboarding", name="Welcome mail", channel="email",
                    variants=(_email("A"), _email("B")), control_percent=20,
                    labels=("Onboarding", "Promo"), respect_global_control=False,
                    goal=Goal("App Launched", 48, None))  # fmt: skip
    late = Campaign(id="push-late", name="Late push", channel="push",
                    variants=(Variant("A", {"title": "Later", "body": "x"}),),
                    respect_global_control=False)  # fmt: skip
    for c, day in ((push, "2026-01-10T10:00:00Z"), (mail, "2026-01-11T10:00:00Z"),
                   (late, "2026-01-13T10:00:00Z")):  # fmt: skip
        save_campaign(ws, c, "active")
        respond(ws, send(ws, plan(ws, c, day)).run_key)
    save_campaign(ws, Campaign(id="sms-draft", name="SMS draft", channel="sms",
                               variants=(Variant("A", {"text": "Hello"}),)))  # fmt: skip
    yield ws
    ws.close()
