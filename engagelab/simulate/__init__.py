"""A seeded simulated world that closes the loop: users, behaviour and message responses.

No real phones or inboxes exist in tests and demos, so :func:`simulate` builds a world
of users spread over real cities and time zones, generates their behaviour day by day
('App Launched' near each user's preferred local hour, 'Page Viewed', the product
funnel up to 'Charged', churn) and answers messages sent to them
(:meth:`World.respond`). The ground truth (preferred hours, engagement, churn days,
planted variant and label effects) is exposed so analyses can be checked against it.
:func:`simulate_into` puts a world into a workspace; :func:`respond` lets it answer the
messages a campaign run sent.

Example:
    >>> import pandas as pd
    >>> from engagelab.simulate import simulate
    >>> world = simulate(n_users=1_000, days=30, seed=7, label_effects={"Onboarding": 0.1})
    >>> world.plant_variant_effects("welcome", {"A": 1.0, "B": 1.2})
    >>> events = world.events()
    >>> sorted(set(events.column("event").to_pylist()))[:3]
    ['Added to Cart', 'App Launched', 'Charged']
    >>> msgs = pd.DataFrame({
    ...     "user_id": ["u0000001", "u0000002"], "campaign_id": "welcome", "variant": ["A", "B"],
    ...     "channel": "email", "send_ts": pd.Timestamp("2026-01-05 18:00", tz="UTC"),
    ...     "labels": [["Onboarding"], ["Onboarding"]], "message_key": ["k1", "k2"]})
    >>> answer = world.respond(msgs)
    >>> answer.schema == events.schema
    True
"""

from engagelab.simulate._behaviour import EVENT_NAMES
from engagelab.simulate._behaviour import SIM_EVENT_SCHEMA as EVENT_SCHEMA
from engagelab.simulate._catalog import CHANNEL_RATES, CITIES, City
from engagelab.simulate._config import WorldConfig
from engagelab.simulate._population import SIM_PROFILE_SCHEMA as PROFILE_SCHEMA
from engagelab.simulate._respond import MESSAGE_COLUMNS
from engagelab.simulate._world import World, simulate
from engagelab.simulate.answers import respond, world_answer
from engagelab.simulate.worlds import WORLD_FILE, load_world, simulate_into

__all__ = [
    "CHANNEL_RATES",
    "CITIES",
    "EVENT_NAMES",
    "EVENT_SCHEMA",
    "MESSAGE_COLUMNS",
    "PROFILE_SCHEMA",
    "WORLD_FILE",
    "City",
    "World",
    "WorldConfig",
    "load_world",
    "respond",
    "simulate",
    "simulate_into",
    "world_answer",
]
