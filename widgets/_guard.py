"""Shared widget plumbing: callbacks whose errors show in the widget, and a debouncer.

ipywidgets swallows exceptions raised in ``observe`` and ``on_click`` callbacks (they
go to the kernel log, ipywidgets #2949), so a widget that just stops working is the
failure users see. Every callback of an engagelab widget goes through
:func:`guarded`, which puts ``"<ErrorType>: <message>"`` on the widget's error line.

:class:`Debouncer` runs a function some seconds after the last request, in a
background thread, and hands its result over only if no newer request was made in
the meantime (a generation counter), so a slow, stale result never overwrites a
newer one. ``delay=0`` runs synchronously, which is what headless tests use.
"""

from __future__ import annotations

import functools
import html
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from engagelab.errors import ValidationError

__all__ = ["Debouncer", "ErrorLine", "StaleNote", "guarded"]


class ErrorLine(w.HTML):
    """A one-line red error message (empty and hidden when there is no error)."""

    def __init__(self, css_class: str):
        super().__init__(value="")
        self.add_class(css_class)
        self.exception: BaseException | None = None
        self.layout.display = "none"

    @property
    def text(self) -> str:
        """The message shown, as plain text (``""`` when none)."""
        return "" if self.exception is None else _message(self.exception)

    def show(self, exc: BaseException, prefix: str = "") -> None:
        """Show ``exc`` (optionally after ``prefix``, e.g. ``'row 2: '``)."""
        self.exception = exc
        text = prefix + _message(exc)
        self.value = f"<span style='color:#b00020'>&#9888; {html.escape(text)}</span>"
        self.layout.display = None

    def clear(self) -> None:
        """Hide the error line."""
        self.exception = None
        self.value = ""
        self.layout.display = "none"


class StaleNote(w.HTML):
    """A grey note saying the results below no longer match the inputs, and a dimmed look
    (CSS class ``el-stale``) on those result widgets; hidden and undimmed when current.

    Widgets :meth:`mark` their results stale as soon as an input changes (until the new
    result arrives) and clear them on an error, so an old result is never shown as if it
    belonged to the current settings.
    """

    def __init__(self, css_class: str, targets: tuple[w.Widget, ...] = ()):
        super().__init__(value="")
        self.add_class(css_class)
        self.targets = tuple(targets)
        self.reason = ""
        self.layout.display = "none"

    @property
    def stale(self) -> bool:
        """True while the results shown are for other inputs."""
        return bool(self.reason)

    def mark(self, reason: str = "the inputs changed; updating…") -> None:
        """Mark the results stale, saying why."""
        self.reason = reason
        self.value = (
            "<style>.el-stale{opacity:.4}</style>"
            f"<span style='color:#666'>&#8987; results below are out of date: {html.escape(reason)}</span>"
        )
        self.layout.display = None
        for t in self.targets:
            t.add_class("el-stale")

    def clear(self) -> None:
        """The results shown are current."""
        self.reason = ""
        self.value = ""
        self.layout.display = "none"
        for t in self.targets:
            t.remove_class("el-stale")


def _message(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


def guarded(
    error_line: Callable[[Any], ErrorLine],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a widget method used as a callback so its exceptions show in the widget.

    ``error_line(self)`` returns the :class:`ErrorLine` to use. The error is also kept
    on it (``.exception``) so code and tests can read it; it is never swallowed silently.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except Exception as exc:
                error_line(self).show(exc)
                return None

        return wrapper

    return decorate


class Debouncer:
    """Run ``work()`` ``delay`` seconds after the last :meth:`request`, then ``done(result)``.

    ``done(result, error)`` is called with the result (or the exception) only if the
    request is still the newest one when ``work`` finishes. Runs of ``work`` never
    overlap. ``delay=0`` runs both synchronously inside :meth:`request`.

    >>> seen = []
    >>> d = Debouncer(0, lambda result, error: seen.append(result))
    >>> d.request(lambda: 41 + 1)
    >>> seen
    [42]
    """

    def __init__(self, delay: float, done: Callable[[Any, BaseException | None], None]):
        if delay < 0:
            raise ValidationError("debounce", delay, "must be >= 0 seconds")
        self.delay = float(delay)
        self._done = done
        self._generation = 0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()

    def request(self, work: Callable[[], Any]) -> None:
        """Schedule ``work``; cancels a pending (not yet started) earlier request."""
        with self._lock:
            self._generation += 1
            generation = self._generation
            if self._timer is not None:
                self._timer.cancel()
            if self.delay == 0:
                self._timer = None
            else:
                self._idle.clear()
                self._timer = threading.Timer(self.delay, self._run, (generation, work))
                self._timer.daemon = True
                self._timer.start()
        if self.delay == 0:
            self._run(generation, work)

    def _run(self, generation: int, work: Callable[[], Any]) -> None:
        with self._run_lock:
            if generation != self._generation:
                return  # a newer request is pending or ran already
            result: Any = None
            error: BaseException | None = None
            try:
                result = work()
            except Exception as exc:
                error = exc
            with self._lock:
                if generation != self._generation:
                    return  # a newer request came in while this one ran: drop the stale result
                self._timer = None
            try:
                self._done(result, error)
            finally:
                with self._lock:
                    if self._timer is None:
                        self._idle.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the newest request has been handed to ``done``; False on timeout."""
        return self._idle.wait(timeout)

    @property
    def generation(self) -> int:
        """How many requests were made."""
        return self._generation

    def cancel(self) -> None:
        """Drop any pending request."""
        with self._lock:
            self._generation += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._idle.set()
