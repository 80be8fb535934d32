"""Keeps a child server alive: restart with backoff, give up after repeated failures.

Any server with the Child interface can be supervised (the embedded Triton; the embedded
PostgreSQL once the gallery has one). A watch thread probes the child every
`probe_period_s`:

- it exited (a crash, an out-of-memory kill): the event is logged with its exit status and
  the tail of its log;
- it runs but has not answered its liveness probe for `hang_timeout_s` (a hang, e.g.
  SIGSTOP or a deadlock): it is killed, and handled like an exit;
- it runs and answers, but a part of it died (a model's backend process): the child
  repairs that without a restart (repair()).

Then the leftovers of the dead instance are ended (cleanup: orphaned helper processes,
shared-memory files) and the child is started again as at first, after a backoff that
doubles per failure (`backoff_initial_s` .. `backoff_max_s`). More than `max_failures`
failures within `window_s` (failed restarts count) and the supervisor gives up: the child
is stopped and `on_change` hears phase "failed", so `facegate serve` can exit non-zero and
let an outer supervisor (systemd, Kubernetes, compose) take over. The first start is not
retried: an error there is a configuration problem that a restart would not fix.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.ops.argtypes import non_negative_float, non_negative_int, positive_float
from gateway.supervision import ServerStates

log = logging.getLogger(__name__)
Phase = Literal["running", "restarting", "failed", "stopped"]


class ChildStartError(Exception):
    """The child could not be started or made ready."""


class Child(Protocol):
    """A server process the supervisor can start, probe, kill and clean up after."""

    name: str

    def start(self) -> None:
        """Start and block until ready; raise ChildStartError when it cannot be."""

    def exit_status(self) -> int | None:
        """The process's return code once it has exited (negative: killed by that signal)."""

    def alive(self) -> bool:
        """The liveness probe: True when the server answers (quickly)."""

    def kill(self) -> None:
        """SIGKILL the server and everything it started."""

    def stop(self) -> None:
        """Graceful stop (SIGTERM, then SIGKILL after its exit timeout); no-op when not running."""

    def cleanup(self) -> str:
        """End what a dead instance left behind; returns what was done, for the log."""

    def log_tail(self) -> str:
        """The last lines the current (or last) instance wrote."""

    def repair(self) -> str:
        """Fix what needs no restart (a model whose backend process died); '' if nothing."""


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart, how long to wait in between, and when to give up."""

    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    max_failures: int = 5
    window_s: float = 300.0
    hang_timeout_s: float = 30.0
    probe_period_s: float = 1.0

    def backoff_s(self, failures_in_window: int) -> float:
        """Wait before restart number `failures_in_window` (1-based) within the window."""
        return float(
            min(self.backoff_max_s, self.backoff_initial_s * 2 ** max(0, failures_in_window - 1))
        )


@dataclass(frozen=True)
class ChildEvent:
    """A change of a supervised child's phase, as on_change hears it.

    retry_after_s: a client's sensible wait while restarting; recovered_s: time from the
    failure to ready again (phase "running" after a restart).
    """

    name: str
    phase: Phase
    reason: str
    restarts: int
    retry_after_s: float = 0.0
    recovered_s: float | None = None


def describe_exit(code: int) -> str:
    """'exit code 3' or 'signal SIGKILL' for a Popen return code."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """Runs a child and restarts it when it dies or hangs, per a RestartPolicy."""

    def __init__(
        self,
        child: Child,
        policy: RestartPolicy,
        on_change: Callable[[ChildEvent], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.child = child
        self.policy = policy
        self._on_change = on_change
        self._clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures: collections.deque[float] = collections.deque()
        self.restarts = 0
        self.recoveries_s: list[float] = []
        self.failure = ""
        self.phase: Phase = "stopped"

    def start(self) -> None:
        """Start the child (errors propagate: nothing is retried) and watch it from a thread."""
        self.child.start()
        self.phase = "running"
        self._thread = threading.Thread(
            target=self._watch, name=f"supervise-{self.child.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop watching, then stop the child (it is not restarted from here on)."""
        self._stopping.set()
        # A restart in progress sees its child stopped and gives up at once.
        self.child.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=60)
        # The watch thread may have started a new instance just before it saw the flag.
        self.child.stop()
        if self.phase != "failed":
            self.phase = "stopped"

    def _notify(self, event: ChildEvent) -> None:
        self.phase = event.phase
        if self._on_change is not None:
            try:
                self._on_change(event)
            except Exception:
                log.exception("supervision listener failed on %s", event)

    def _watch(self) -> None:
        last_alive = self._clock()
        while not self._stopping.wait(self.policy.probe_period_s):
            try:
                outcome = self._probe_once(last_alive)
            except Exception:
                # One probe's failure (a bug, an HTTP error in a repair) must not end
                # supervision for good: it is logged and the next probe runs as usual.
                log.exception("%s: a supervision probe failed; watching on", self.child.name)
                continue
            if outcome is None:
                return
            last_alive = outcome

    def _probe_once(self, last_alive: float) -> float | None:
        """One probe: the new last-alive time, or None when watching should end."""
        code = self.child.exit_status()
        if code is None:
            if self._answers():
                repaired = self.child.repair()
                if repaired:
                    log.warning("%s: %s", self.child.name, repaired)
                return self._clock()
            silent_s = self._clock() - last_alive
            if silent_s < self.policy.hang_timeout_s or self._stopping.is_set():
                return last_alive
            reason = f"did not answer its liveness probe for {silent_s:.0f} s (hung): killed"
            self.child.kill()
        else:
            reason = f"exited unexpectedly ({describe_exit(code)})"
        if self._stopping.is_set() or not self._recover(reason):
            return None
        return self._clock()

    def _answers(self) -> bool:
        """The liveness probe; a probe that raises counts as no answer (the hang timer runs)."""
        try:
            return self.child.alive()
        except Exception:
            log.exception("%s: the liveness probe raised; counted as no answer", self.child.name)
            return False

    def _record_failure(self) -> int:
        now = self._clock()
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.policy.window_s:
            self._failures.popleft()
        return len(self._failures)

    def _give_up(self, failures: int, reason: str) -> bool:
        self.failure = (
            f"{self.child.name} failed {failures} times within {self.policy.window_s:.0f} s "
            f"(last: {reason}); giving up"
        )
        log.error("%s", self.failure)
        self.child.stop()
        self.child.cleanup()
        self._notify(ChildEvent(self.child.name, "failed", self.failure, self.restarts))
        return False

    def _recover(self, reason: str) -> bool:
        """Restart until the child is ready; False when given up or stopping."""
        failed_at = self._clock()
        log.error(
            "%s %s; the last lines of its log:\n%s", self.child.name, reason, self.child.log_tail()
        )
        while True:
            failures = self._record_failure()
            if failures > self.policy.max_failures:
                return self._give_up(failures, reason)
            backoff_s = self.policy.backoff_s(failures)
            self._notify(
                ChildEvent(self.child.name, "restarting", reason, self.restarts, backoff_s + 5)
            )
            cleaned = self.child.cleanup()
            if cleaned:
                log.warning("%s: cleaned up after the dead instance: %s", self.child.name, cleaned)
            log.warning(
                "%s: restarting in %.1f s (failure %d of at most %d within %.0f s)",
                self.child.name,
                backoff_s,
                failures,
                self.policy.max_failures,
                self.policy.window_s,
            )
            if self._stopping.wait(backoff_s):
                return False
            try:
                self.child.start()
            except ChildStartError as exc:
                if self._stopping.is_set():
                    return False
                reason = f"restart failed: {exc}"
                log.error("%s %s", self.child.name, reason)
                continue
            if self._stopping.is_set():
                return False
            self.restarts += 1
            recovered_s = self._clock() - failed_at
            self.recoveries_s.append(recovered_s)
            log.warning(
                "%s is back after %.1f s (restart %d)", self.child.name, recovered_s, self.restarts
            )
            self._notify(
                ChildEvent(self.child.name, "running", "", self.restarts, recovered_s=recovered_s)
            )
            return True


def add_supervision_options(parser: argparse.ArgumentParser) -> None:
    """The restart policy's command-line options (for `facegate serve`)."""
    default = RestartPolicy()
    group = parser.add_argument_group("supervision (restart of crashed or hung servers)")
    group.add_argument(
        "--restart-max",
        type=non_negative_int,
        default=default.max_failures,
        metavar="N",
        help=f"give up (exit 2) after more than N failures within the window (default {default.max_failures})",
    )
    group.add_argument(
        "--restart-window-s",
        type=positive_float,
        default=default.window_s,
        metavar="S",
        help=f"the window for --restart-max (default {default.window_s:.0f})",
    )
    group.add_argument(
        "--hang-timeout-s",
        type=positive_float,
        default=default.hang_timeout_s,
        metavar="S",
        help="kill and restart a server whose liveness probe has not answered this long "
        f"(default {default.hang_timeout_s:.0f})",
    )
    group.add_argument(
        "--restart-backoff-s",
        type=non_negative_float,
        default=default.backoff_initial_s,
        metavar="S",
        help=f"first wait before a restart; doubles per failure up to {default.backoff_max_s:.0f} s "
        f"(default {default.backoff_initial_s:.0f})",
    )


def policy_from_args(args: argparse.Namespace) -> RestartPolicy:
    return RestartPolicy(
        backoff_initial_s=args.restart_backoff_s,
        max_failures=args.restart_max,
        window_s=args.restart_window_s,
        hang_timeout_s=args.hang_timeout_s,
    )


def publish_events(
    states: ServerStates, server: str, on_failed: Callable[[], None]
) -> Callable[[ChildEvent], None]:
    """An on_change that keeps the gateway's ServerStates current; on_failed runs on give-up."""

    def on_change(event: ChildEvent) -> None:
        if event.phase == "restarting":
            states.mark_down(server, event.reason, event.retry_after_s)
        elif event.phase == "running":
            states.mark_up(server)
        elif event.phase == "failed":
            states.mark_down(server, event.reason, 60.0)
            states.mark_failed(event.reason)
            on_failed()

    return on_change


GAVE_UP_NEXT = (
    "facegate serve cannot recover by itself: see the log above for the server's last lines, "
    "fix the cause (memory, disk, models), then start it again (an outer supervisor such as "
    "systemd or Kubernetes does that for you)"
)


def supervise(
    child: Child, policy: RestartPolicy, states: ServerStates | None = None
) -> tuple[ServerStates, Supervisor]:
    """A Supervisor whose events reach `states` (new if None); on give-up this process gets SIGTERM.

    SIGTERM lets the gateway drain and shut down as on any stop; the caller then sees
    `supervisor.failure` and exits non-zero. Pass the same states for every child.
    """
    states = states or ServerStates()

    def terminate_self() -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    on_change = publish_events(states, child.name, terminate_self)
    return states, Supervisor(child, policy, on_change)
