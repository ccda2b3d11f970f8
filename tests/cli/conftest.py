"""The workspaces the command-line tests run against, shared with the packages' own tests."""

from tests.besttime.conftest import sim_ws  # noqa: F401  (3,000 users x 42 days, simulated)
from tests.jobs.conftest import jws  # noqa: F401  (a workspace with notebooks for jobs)
from tests.retention.conftest import rand_ws  # noqa: F401  (random events, known retention)
