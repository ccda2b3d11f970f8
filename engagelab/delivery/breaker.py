"""A circuit breaker per endpoint, for providers that call a remote API.

``closed`` (requests flow) → ``open`` after ``failures`` consecutive failed attempts (no
request goes out; messages for the endpoint wait), and only once the streak has lasted
``window`` seconds (0 by default: the count alone; a window keeps a burst of fast
failures while successes are still coming, such as every fresh message's first attempt
being refused, from opening it) → ``half_open`` once ``cooldown``
seconds have passed: one probe request may go → ``closed`` again when it succeeds, or
``open`` for another cool-down when it fails.

The breaker is a plain state machine driven by the caller's clock (seconds, monotonic)
and is not thread-safe: one coordinating thread owns it.

Example:
    >>> b = CircuitBreaker("hooks.example.org:443", failures=2, cooldown=5.0)
    >>> b.failure(0.0, "HTTP 503"); b.state
    'closed'
    >>> b.failure(0.1, "HTTP 503"); b.state, b.allow(1.0)
    ('open', False)
    >>> b.allow(5.1), b.state, b.allow(5.2)  # one probe after the cool-down
    (True, 'half_open', False)
    >>> b.success(); b.state
    'closed'
"""

from __future__ import annotations

from engagelab.validate import check_int, check_number

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Opens after ``failures`` consecutive failures (over at least ``window`` seconds);
    probes once per ``cooldown`` seconds."""

    def __init__(
        self, endpoint: str, failures: int = 10, cooldown: float = 5.0, window: float = 0.0
    ):
        self.endpoint = endpoint
        self.threshold = check_int("http.breaker_failures", failures, low=1)
        self.cooldown = check_number("http.breaker_cooldown", cooldown, low=0)
        self.window = check_number("http.breaker_window", window, low=0)
        self.state = "closed"
        #: consecutive failures seen (reset by a success)
        self.failures = 0
        #: when an open breaker lets a probe through (clock seconds)
        self.retry_at = 0.0
        #: how many times the breaker opened
        self.opened = 0
        #: the error of the last failure
        self.last_error = ""
        self._probing = False
        self._since = 0.0  # when the current streak of failures began

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker({self.endpoint!r}, state={self.state!r}, "
            f"failures={self.failures}/{self.threshold})"
        )

    def allow(self, now: float) -> bool:
        """Whether a request may go now (a half-open breaker lets one probe through)."""
        if self.state == "closed":
            return True
        if self.state == "open" and now >= self.retry_at:
            self.state = "half_open"
        if self.state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def wakes_at(self) -> float | None:
        """When :meth:`allow` may next say yes (None: at once, or when the probe ends)."""
        return self.retry_at if self.state == "open" else None

    def release(self) -> None:
        """Forget a probe that will not report (its caller stopped before it ended)."""
        self._probing = False

    def success(self) -> None:
        """The endpoint answered (any answer that is not a retryable failure)."""
        self.state, self.failures, self._probing = "closed", 0, False

    def failure(self, now: float, error: str, probe: bool = False) -> None:
        """A retryable failure (5xx, 408, 425, 429, connection error, timeout)."""
        self.failures += 1
        self.last_error = error
        if self.failures == 1:
            self._since = now
        due = self.failures >= self.threshold and now - self._since >= self.window
        if probe or (self.state == "closed" and due):
            self.state, self._probing = "open", False
            self.retry_at = now + self.cooldown
            self.opened += 1

    def reason(self) -> str:
        """Why messages for this endpoint are held, for a result's error."""
        return (
            f"circuit open for {self.endpoint} after {self.failures} consecutive failures "
            f"(last: {self.last_error})"
        )
