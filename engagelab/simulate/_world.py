"""World: a seeded population with its behaviour, planted truth and message responses."""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import queue
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engagelab.errors import ValidationError
from engagelab.simulate._behaviour import baseline_events, empty_events
from engagelab.simulate._catalog import CHANNEL_RATES
from engagelab.simulate._config import WorldConfig
from engagelab.simulate._population import LEVELS, Population
from engagelab.simulate._respond import CHURNED_VIEW_FACTOR, HOUR_FLOOR, HOUR_SIGMA, respond
from engagelab.validate import check_int, check_number, check_str

__all__ = ["World", "simulate"]

_FORMAT = "engagelab.simulate.World/1"
#: Parquet columns worth dictionary-encoding (few distinct values).
_DICTIONARY_COLUMNS = ["event", "url", "product", "category", "campaign_id", "variant", "channel"]
_MAX_USER_DAYS = 8_000_000  # per internal chunk of baseline_events


def simulate(
    n_users: int = 10_000, days: int = 90, seed: int = 0, start: str = "2026-01-01", **config: Any
) -> World:
    """Create a simulated world; ``config`` takes the other :class:`WorldConfig` fields.

    Example:
        >>> world = simulate(n_users=200, days=14, seed=1)
        >>> world.profiles.num_rows
        200
        >>> events = world.events()
        >>> events.schema.field("ts").type
        TimestampType(timestamp[us, tz=UTC])
        >>> bool(world.events().equals(events))
        True
    """
    return World(WorldConfig(n_users=n_users, days=days, seed=seed, start=start, **config))


class World:
    """A seeded simulated world: profiles, day-by-day behaviour and answers to messages.

    Everything is a pure function of :attr:`config` and the planted variant effects, so
    two processes that :meth:`load` the same saved world generate identical events and
    identical responses.

    Args:
        config: the world's :class:`WorldConfig`.
        variant_effects: planted click multipliers, ``{campaign_id: {variant: multiplier}}``.

    Example: a campaign programme advancing the world one day at a time. Day ``d``'s
    baseline is the same whether it is generated alone or with the initial period, and
    an answer depends only on its message, so re-running a day reproduces it exactly.

        >>> import pandas as pd
        >>> world = simulate(n_users=500, days=7, seed=4, label_effects={"Onboarding": 0.2})
        >>> history = [world.events()]
        >>> for day in range(7, 10):
        ...     sent = pd.DataFrame({
        ...         "user_id": ["u0000001", "u0000002"], "campaign_id": "welcome",
        ...         "variant": ["A", "B"], "channel": "push",
        ...         "send_ts": pd.Timestamp(world.date_of(day), tz="UTC") + pd.Timedelta(hours=18),
        ...         "labels": [["Onboarding"]] * 2,
        ...         "message_key": [f"run-{day}:u0000001:welcome", f"run-{day}:u0000002:welcome"]})
        ...     history += [world.baseline_events(day, day + 1), world.respond(sent)]
        >>> events = pa.concat_tables(history)
        >>> events.schema == history[0].schema
        True
        >>> world.respond(sent).equals(world.respond(sent))
        True
    """

    def __init__(
        self, config: WorldConfig, variant_effects: Mapping[str, Mapping[str, float]] | None = None
    ):
        if not isinstance(config, WorldConfig):
            raise ValidationError("config", type(config).__name__, "must be a WorldConfig")
        self._config = config
        self._pop = Population.generate(config)
        self._effects: dict[str, dict[str, float]] = {}
        self._profiles: pa.Table | None = None
        self._truth: pd.DataFrame | None = None
        self._n_events: int | None = None
        for campaign, effects in (variant_effects or {}).items():
            self.plant_variant_effects(campaign, effects)

    # ----------------------------------------------------------------- properties
    @property
    def config(self) -> WorldConfig:
        """The world's configuration."""
        return self._config

    @property
    def profiles(self) -> pa.Table:
        """The ``profiles`` table: :data:`engagelab.schema.PROFILE_SCHEMA` plus name, city,
        country, plan, age, signup_source and ad_consent."""
        if self._profiles is None:
            self._profiles = self._pop.profiles()
        return self._profiles

    @property
    def truth(self) -> pd.DataFrame:
        """Planted per-user truth: user_id, timezone, city, country, preferred_hour (local),
        focus, engagement ('heavy'/'regular'/'sparse'), sessions_per_day, weekend_factor,
        signup_day, churn_day (local day index from ``start``, NaN if never) and churn_hazard."""
        if self._truth is None:
            self._truth = self._pop.truth()
        return self._truth.copy()

    @property
    def variant_effects(self) -> dict[str, dict[str, float]]:
        """Planted click multipliers by campaign and variant (a copy)."""
        return {c: dict(v) for c, v in self._effects.items()}

    @property
    def planted(self) -> dict[str, Any]:
        """Every planted effect and rate, for comparing analyses against the truth."""
        return {
            "variant_effects": self.variant_effects,
            "label_effects": dict(self._config.label_effects),
            "retention_days": self._config.retention_days,
            "channel_rates": {
                c: dict(zip(("deliver", "view", "click"), r, strict=True))
                for c, r in CHANNEL_RATES.items()
            },
            "hour_effect": {"floor": HOUR_FLOOR, "sigma_hours": HOUR_SIGMA},
            "churned_view_factor": CHURNED_VIEW_FACTOR,
            "conversion_rate": self._config.conversion_rate,
        }

    # ------------------------------------------------------------------- planting
    def plant_variant_effects(self, campaign_id: str, effects: Mapping[str, float]) -> None:
        """Plant click-probability multipliers for the variants of a campaign.

        ``P(click | viewed) = min(1, channel click rate * effects[variant])``; variants
        not named keep multiplier 1. Planting again replaces that campaign's effects.

        >>> world = simulate(n_users=10, days=1)
        >>> world.plant_variant_effects("spring", {"A": 1.0, "B": 1.3})
        >>> world.variant_effects
        {'spring': {'A': 1.0, 'B': 1.3}}
        """
        check_str("campaign_id", campaign_id)
        if not isinstance(effects, Mapping) or not effects:
            raise ValidationError(
                "effects", effects, "must be a non-empty mapping variant -> multiplier"
            )
        clean = {}
        for variant, mult in effects.items():
            check_str("variant", variant)
            clean[variant] = float(check_number(f"effects[{variant!r}]", mult, low=0, high=1000))
        self._effects[campaign_id] = clean

    # --------------------------------------------------------------------- events
    def day_index(self, when: Any) -> int:
        """Local day index from ``start`` of a date-like value (an int is returned as is)."""
        if isinstance(when, int) and not isinstance(when, bool):
            return when
        try:
            date = pd.Timestamp(when).date()
        except (ValueError, TypeError):
            raise ValidationError(
                "day", when, "must be a day index or a date such as '2026-02-01'"
            ) from None
        return (date - self._config.start_date).days

    def date_of(self, day: int) -> dt.date:
        """The local calendar date of day index ``day``."""
        return self._config.start_date + dt.timedelta(days=check_int("day", day))

    def baseline_events(self, start: Any, end: Any) -> pa.Table:
        """Baseline behaviour of local days ``start <= day < end`` (indices or dates).

        Days may lie beyond the initial period, so a campaign programme can advance the
        world; each day's rows are the same however the range is split.

        >>> world = simulate(n_users=300, days=10, seed=2)
        >>> whole = world.baseline_events(0, 10)
        >>> split = pa.concat_tables([world.baseline_events(d, d + 1) for d in range(10)])
        >>> whole.sort_by("event_id").equals(split.sort_by("event_id"))
        True
        """
        d0, d1 = self.day_index(start), self.day_index(end)
        check_int("start day", d0, low=0, high=65_535)
        check_int("end day", d1, low=d0, high=65_536)
        step = max(1, _MAX_USER_DAYS // self._config.n_users)
        parts = [baseline_events(self._pop, d, min(d + step, d1)) for d in range(d0, d1, step)]
        return pa.concat_tables(parts) if parts else empty_events()

    def iter_events(self, batch_days: int = 7) -> Iterator[pa.Table]:
        """Stream the baseline events of the initial period, ``batch_days`` days at a time
        (each table has the full ``EVENT_SCHEMA`` of :mod:`engagelab.simulate`)."""
        check_int("batch_days", batch_days, low=1)
        total = 0
        for d in range(0, self._config.days, batch_days):
            table = baseline_events(self._pop, d, min(d + batch_days, self._config.days))
            total += table.num_rows
            yield table
        self._n_events = total

    def events(self) -> pa.Table:
        """All baseline events of the initial period in one table (for small worlds)."""
        table = pa.concat_tables(list(self.iter_events()), promote_options="none")
        return table if table.num_rows else empty_events()

    def respond(self, messages: pd.DataFrame | pa.Table) -> pa.Table:
        """Events produced by users in answer to sent messages.

        Args:
            messages: one row per message with columns user_id, campaign_id, variant,
                channel, send_ts (UTC; naive values are read as UTC), labels (list of
                str) and message_key; a pandas DataFrame or a pyarrow Table.

        Returns:
            'Notification Delivered' / 'Viewed' / 'Clicked' (carrying campaign_id,
            variant, channel, labels, message_key), 'Charged' conversions after clicks
            and extra 'App Launched' from planted label effects. Rows for unknown user
            ids are omitted. Deterministic per (seed, message_key): the same message
            always gets the same rows and event ids, whatever else is in the batch.
        """
        if isinstance(messages, pa.Table):
            messages = messages.to_pandas()
        return respond(self._pop, self._effects, messages)

    # ------------------------------------------------------------------ persistence
    def write_parquet(self, directory: str | os.PathLike[str], batch_days: int = 7) -> list[Path]:
        """Write ``profiles.parquet`` and ``events/part-NNNNN.parquet`` files; return their paths.

        Generation of the next batch overlaps with writing the previous one.
        """
        root = Path(directory)
        (root / "events").mkdir(parents=True, exist_ok=True)
        paths = [root / "profiles.parquet"]
        pending: queue.Queue[tuple[pa.Table, Path] | None] = queue.Queue(maxsize=1)
        errors: list[BaseException] = []

        def writer() -> None:
            while (item := pending.get()) is not None:
                try:
                    pq.write_table(item[0], item[1], use_dictionary=_DICTIONARY_COLUMNS)
                except BaseException as exc:  # re-raised in the caller's thread
                    errors.append(exc)

        thread = threading.Thread(target=writer, name="engagelab-sim-writer", daemon=True)
        thread.start()
        try:
            pending.put((self.profiles, paths[0]))
            for i, table in enumerate(self.iter_events(batch_days)):
                path = root / "events" / f"part-{i:05d}.parquet"
                pending.put((table, path))
                paths.append(path)
                if errors:
                    break
        finally:
            pending.put(None)
            thread.join()
        if errors:
            raise errors[0]
        return paths

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the config and planted effects as JSON (everything else re-derives from them)."""
        out = Path(path)
        doc = {
            "format": _FORMAT,
            "config": self._config.to_dict(),
            "variant_effects": self._effects,
        }
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True))
        os.replace(tmp, out)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> World:
        """Load a world written by :meth:`save`.

        >>> import tempfile, os
        >>> world = simulate(n_users=50, days=3, seed=9)
        >>> world.plant_variant_effects("c1", {"B": 1.5})
        >>> with tempfile.TemporaryDirectory() as d:
        ...     again = World.load(world.save(os.path.join(d, "world.json")))
        >>> again.config == world.config, again.variant_effects == world.variant_effects
        (True, True)
        """
        doc = json.loads(Path(path).read_text())
        if doc.get("format") != _FORMAT:
            raise ValidationError("format", doc.get("format"), f"must be {_FORMAT!r}")
        return cls(WorldConfig.from_dict(doc["config"]), doc.get("variant_effects") or {})

    # ---------------------------------------------------------------------- display
    def _summary(self) -> dict[str, Any]:
        cfg = self._config
        levels = pd.Series(self._pop.level).value_counts().reindex(range(len(LEVELS)), fill_value=0)
        return {
            "users": cfg.n_users,
            "days": f"{cfg.days} from {cfg.start}",
            "seed": cfg.seed,
            "events": "not generated yet" if self._n_events is None else f"{self._n_events:,}",
            "time zones": len(set(self._pop.zone.tolist())),
            "engagement": ", ".join(f"{n} {lvl}" for lvl, n in zip(LEVELS, levels, strict=True)),
            "label effects": dict(cfg.label_effects) or "none",
            "variant effects": self.variant_effects or "none",
        }

    def __repr__(self) -> str:
        """One line: size, period, seed, events (once generated), zones and planted effects.

        >>> simulate(n_users=1_000, days=10, seed=1, label_effects={"Onboarding": 0.1})
        World(users=1,000, days=10, start='2026-01-01', seed=1, events=not generated yet, time_zones=26, label_effects={'Onboarding': 0.1}, variant_effects=none)
        """
        cfg, s = self._config, self._summary()
        return (
            f"World(users={cfg.n_users:,}, days={cfg.days}, start={cfg.start!r}, seed={cfg.seed}, "
            f"events={s['events']}, time_zones={s['time zones']}, "
            f"label_effects={s['label effects']}, variant_effects={s['variant effects']})"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in self._summary().items()
        )
        return f"<table class='engagelab-world'><caption>Simulated world</caption>{rows}</table>"
