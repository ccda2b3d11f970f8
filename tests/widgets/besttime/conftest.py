"""The best-time explorer runs on the best-time tests' simulated workspace."""

from tests.besttime.conftest import sim_ws  # noqa: F401
