"""A simulated label programme: an Onboarding campaign with a holdout, in a workspace.

Used by the proof tests, the notebook and the widget demo. It plays the delivery side
(the campaigns module does this for real): choose who is sent (only users reachable on
push who were active in the last week: a *selected* audience), hold out a random campaign
control group and a global control group with :mod:`engagelab.experiments`, append
'Notification Sent' rows carrying the labels for the treated and 'Control Group' rows
(dated when they would have been sent) for the held out, let the simulated world answer
the sent messages (its planted label effect adds later 'App Launched' events), and
simulate the following ``observe_days`` so day-N retention can be observed for everyone.

Example:
    >>> import tempfile
    >>> from engagelab import Workspace
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> info = label_programme(ws, n_users=400, days=14, observe_days=3, seed=1)
    >>> info["sent"] > 0 and info["held_out"] > 0
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engagelab.schema import CONTROL_GROUP, NOTIFICATION_SENT

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["label_programme"]


def label_programme(
    ws: Core,
    *,
    n_users: int = 20_000,
    days: int = 28,
    observe_days: int = 40,
    seed: int = 11,
    label: str = "Onboarding",
    effect: float = 0.15,
    control_fraction: float = 0.2,
    global_fraction: float = 0.05,
    campaign_id: str = "onboarding-1",
    channel: str = "push",
) -> dict[str, Any]:
    """Simulate a world, send ``label`` once to a selected audience with holdouts, observe on.

    Returns:
        ``{"send_ts", "sent", "held_out", "audience", "response_event_ids", ...}``;
        ``response_event_ids`` are the 'App Launched' events planted by the label effect
        (so tests can compute the counterfactual).
    """
    from engagelab.experiments import campaign_split, global_control
    from engagelab.simulate.worlds import load_world, simulate_into

    simulate_into(ws, n_users=n_users, days=days, seed=seed, label_effects={label: effect})
    world = load_world(ws)
    send_ts = pd.Timestamp(world.date_of(days)).tz_localize("UTC") + pd.Timedelta(hours=18)
    week_ago = send_ts - pd.Timedelta(days=7)
    active = ws.sql(
        "SELECT DISTINCT e.user_id FROM events e JOIN profiles p ON p.user_id = e.user_id "
        "WHERE e.event = 'App Launched' AND e.ts >= $a AND e.ts < $b AND p.push_token IS NOT NULL "
        "AND coalesce(p.optout_push, false) = false ORDER BY 1",
        {"a": week_ago.to_pydatetime(), "b": send_ts.to_pydatetime()},
    )["user_id"].to_numpy(dtype=object)
    arm = campaign_split(
        active, salt=campaign_id, variants=["A"], control_fraction=control_fraction
    )
    glob = global_control(active, workspace_salt="demo", fraction=global_fraction)
    held = np.full(len(active), None, dtype=object)
    held[arm == "control"] = "campaign"
    held[glob] = "global"
    treated = active[held == None]  # noqa: E711 (elementwise)
    messages = pd.DataFrame(
        {
            "user_id": treated,
            "campaign_id": campaign_id,
            "variant": "A",
            "channel": channel,
            "send_ts": send_ts,
            "labels": [[label]] * len(treated),
            "message_key": [f"{campaign_id}:{u}" for u in treated],
        }
    )
    sent_rows = messages.rename(columns={"send_ts": "ts"}).assign(event=NOTIFICATION_SENT)
    sent_rows["ts"] = sent_rows["ts"].astype("datetime64[us, UTC]")
    ws.append(
        "events", sent_rows, fingerprint=f"label-demo-sent:{campaign_id}:{seed}", source="demo"
    )
    hold = active[held != None]  # noqa: E711
    ctrl = pd.DataFrame(
        {
            "user_id": hold,
            "event": CONTROL_GROUP,
            "ts": pd.Series([send_ts] * len(hold), dtype="datetime64[us, UTC]"),
            "campaign_id": campaign_id,
            "control_group": held[held != None].astype(str),  # noqa: E711
        }
    )
    ws.append("events", ctrl, fingerprint=f"label-demo-control:{campaign_id}:{seed}", source="demo")
    later = world.baseline_events(days, days + observe_days)
    # the world answers with the planted launches of the next ``retention_days`` at once;
    # keep only what has happened by the end of the observation period (its last event)
    answers = world.respond(messages)
    horizon = (
        pc.max(later.column("ts"))
        if later.num_rows
        else pa.scalar(send_ts.to_pydatetime(), answers.schema.field("ts").type)
    )
    answers = answers.filter(pc.less_equal(answers.column("ts"), horizon))
    ws.append(
        "events", answers, fingerprint=f"label-demo-answers:{campaign_id}:{seed}", source="demo"
    )
    ws.append(
        "events",
        later,
        fingerprint=f"label-demo-observe:{seed}:{days}:{observe_days}",
        source="demo",
    )
    ev = answers.column("event").to_numpy(zero_copy_only=False)
    planted = answers.filter(pa.array(ev == "App Launched")).column("event_id").to_pylist()
    return {
        "send_ts": send_ts,
        "audience": int(len(active)),
        "sent": int(len(treated)),
        "held_out": int(len(hold)),
        "not_selected": int(n_users - len(active)),
        "response_event_ids": planted,
        "label": label,
        "effect": effect,
    }
