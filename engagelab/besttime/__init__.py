"""Best send time: choose, for each user, the local time a message is most likely engaged with.

Two models share one interface (:func:`fit` -> :class:`BestTimeModel`):

* ``mode='clevertap'``: CleverTap-faithful: one engagement event, twelve two-hour local
  buckets, the bucket where the user was most active in the last 180 days (ties to the
  earliest); users without the event get the default slot.
* ``mode='bayes'``: hour histogram over several events with recency weights, shrunk toward
  a segment/global prior with a Dirichlet-multinomial prior strength fitted by maximum
  marginal likelihood; returns the slot and a confidence (the weight of the user's own
  history). With ``granularity='hour_of_week'`` each user's weekday-given-hour shares are
  shrunk toward the group's with a second fitted strength, and the slot depends on the
  weekday of the logical date (``model.slots(day)``).

:func:`send_times` turns slots into UTC send times on a campaign's logical date (delivery
window, DND, passed slots, exploration with propensities); :func:`policy` /
:func:`register_policy` plug it into campaigns; :func:`evaluate` compares policies on a
time split (hit rate, replay on exploration logs, simulator truth).

Example:
    >>> from engagelab.besttime import BestTimeOptions
    >>> o = BestTimeOptions(mode="clevertap", window=("09:00", "21:00"))
    >>> o.mode, o.window
    ('clevertap', ('09:00', '21:00'))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engagelab.exports import lazy_exports

if TYPE_CHECKING:
    from engagelab.besttime.delivery import local_to_utc, policy, register_policy, send_times
    from engagelab.besttime.evaluate import (
        POLICIES,
        BestTimeEvaluation,
        evaluate,
        exploration_logs,
        policy_slots,
        replay,
    )
    from engagelab.besttime.explore import activity_heatmap
    from engagelab.besttime.model import REASONS, BestTimeModel, fit
    from engagelab.besttime.options import BestTimeOptions

#: Exported names, imported from their modules on first use.
_EXPORTS = {
    "BestTimeEvaluation": "engagelab.besttime.evaluate",
    "BestTimeModel": "engagelab.besttime.model",
    "BestTimeOptions": "engagelab.besttime.options",
    "POLICIES": "engagelab.besttime.evaluate",
    "REASONS": "engagelab.besttime.model",
    "activity_heatmap": "engagelab.besttime.explore",
    "evaluate": "engagelab.besttime.evaluate",
    "exploration_logs": "engagelab.besttime.evaluate",
    "fit": "engagelab.besttime.model",
    "local_to_utc": "engagelab.besttime.delivery",
    "policy": "engagelab.besttime.delivery",
    "policy_slots": "engagelab.besttime.evaluate",
    "register_policy": "engagelab.besttime.delivery",
    "replay": "engagelab.besttime.evaluate",
    "send_times": "engagelab.besttime.delivery",
}

__all__ = [
    "POLICIES",
    "REASONS",
    "BestTimeEvaluation",
    "BestTimeModel",
    "BestTimeOptions",
    "activity_heatmap",
    "evaluate",
    "exploration_logs",
    "fit",
    "local_to_utc",
    "policy",
    "policy_slots",
    "register_policy",
    "replay",
    "send_times",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
