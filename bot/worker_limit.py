"""How many events the workers may have in progress, adapted to how the acks are doing.

The webhook acks and the workers share one event loop and one core. Each loop iteration runs
every ready callback before it polls the sockets again, so when many workers are ready at
once an ack waits behind all of them; and a loop kept busy by workers also delays the inbox's
commit thread. Two signals say the acks are suffering: ``LagProbe`` measures how late a
periodic timer fires because the loop was busy (the length of its iterations), and the edge
reports how long each ack took. ``AdaptiveLimit`` halves the number of events allowed in
progress when the lag passes its target or the slowest recent ack is ``ack_margin`` slower
than the fastest of the last seconds (what the disk and an idle loop allow: a slow disk does
not stop the workers), down to ``floor`` (0 by default: a flood pauses the workers), and
grows it back while both stay low. The backlog waits durably in the inbox, not in front of
the acks. While the edge refuses new POSTs (``hold(True)``, see ``bot.edge_admission``) most
answers are cheap 503s and starving the workers protects nothing: the limit then ignores
the ack durations (the few accepted POSTs wait behind a loaded commit; halving on them
starved the workers to the floor) and never goes below ``overload_floor`` (half the ceiling
by default; the bot passes ``WORKER_OVERLOAD_CONCURRENCY``), so the core goes to the accepted
work. The lag target still holds: the 503s' turnaround follows the loop's iterations, and a
client that does not pipeline gets at most one answer per connection per iteration. Letting
the limit fall to ``floor`` whenever an iteration passed 10 ms did not shorten the answers
(p99 0.65-4.1 s against 0.66-0.75 s for a fixed 16, 4 turns each). Measured
at 4,000 POSTs/s over 64 connections (ceiling 64): a floor of 64, or twice the lag target,
put the p99 of every answer at 1-6 s; on a fast core 32 gave ~775 replies/s at a p99 of
0.25-0.3 s and 16 ~650 replies/s at 0.1 s, on a slow one 32 gave 712-902 replies/s at a p99
of 1.5-5.0 s and 16 572-958 replies/s at 0.6-0.75 s.

Near full load a busy loop lags most of the time, so the limit sits at ``floor`` and the floor
sets the pace; when that pace is a little under the arrival rate the backlog grows although
the core could carry the load with a few more events in progress. ``sample_demand`` tells
that case from a flood: the limit held work back for most of the last period, fewer than
``CATCH_UP_RATIO`` times as many events arrived as finished, nothing was refused for
``CALM_SAMPLES`` periods, and acks were not slow. Then the floor is ``catch_up_floor`` (0,
off, unless set) until the next period says otherwise. A flood is either far above the
finishing rate or, once the edge refuses, admitted only as fast as it drains: both keep the
lower floor, so its answers stay fast (the flood's ramp, before refusals start, is what a
higher floor made slow). The price is ack time near full load: more events in progress
lengthen the loop's iterations.

>>> limit = AdaptiveLimit(64, lag_target=0.002, ack_margin=0.010)
>>> limit.observe(0.020), limit.observe(0.0, slowest_ack=0.030, fastest_ack=0.003)
(32, 16)
>>> limit.observe(0.0, slowest_ack=0.004, fastest_ack=0.003), limit.observe(0.0)
(17, 18)
>>> limit.hold(True), limit.observe(0.0, slowest_ack=0.500, fastest_ack=0.003)
(True, 33)
>>> limit.observe(0.020), limit.observe(0.020), limit.hold(False)
(32, 32, False)
>>> limit.observe(0.020)
16
>>> behind = AdaptiveLimit(64, floor=16, catch_up_floor=28)
>>> behind.observe(0.020), behind.observe(0.020), behind.observe(0.020)
(32, 16, 16)
>>> behind.sample_demand(arrived=900, finished=800, binding=True), behind.value
(True, 28)
>>> behind.observe(0.020), behind.sample_demand(arrived=2000, finished=800, binding=True)
(28, False)
>>> behind.hold(True), behind.hold(False), behind.observe(0.020), behind.observe(0.020)
(True, False, 16, 16)
>>> any(behind.sample_demand(arrived=900, finished=800, binding=True) for _ in range(CALM_SAMPLES))
False
>>> behind.sample_demand(arrived=900, finished=800, binding=True)
True
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

# An ack spans about four loop iterations plus a commit: iterations of ~2 ms keep its p99
# well under Meta's patience and the 50 ms target. Timers fire up to ~1 ms late when idle.
DEFAULT_LAG_TARGET_SECONDS = 0.002
# How much slower than the fastest recent ack an ack may be (the project's p99 target is 50 ms).
DEFAULT_ACK_MARGIN_SECONDS = 0.010
# The catch-up floor applies while fewer than this many times as many events arrive as finish:
# measured at 1,700-1,900 events/s against a floor that carried ~1,300/s, the ratio stayed
# under 1.4; the 4,000/s flood probe arrives at about twice the finishing rate.
CATCH_UP_RATIO = 1.5
# ...and only after this many demand samples without a refusal (see DEMAND_SAMPLE_TICKS).
CALM_SAMPLES = 20
# ...and only while at most CATCH_UP_SLOW_ACK_SHARE of the period's acks took longer than
# CATCH_UP_ACK_SECONDS, commit included: a safety net for a flood taken for a steady load.
# Set at 25 ms it stopped every catch-up on a busy core, and so every gain.
CATCH_UP_ACK_SECONDS = 0.1
CATCH_UP_SLOW_ACK_SHARE = 0.01
# Probe ticks per demand sample (half a second at the default probe interval).
DEMAND_SAMPLE_TICKS = 100
# The fastest ack is remembered over this many probe ticks (about two seconds).
_BASELINE_TICKS = 400
DEFAULT_PROBE_INTERVAL_SECONDS = 0.005


class AdaptiveLimit:
    """AIMD on loop lag and ack latency: halve on pressure, grow by one while both signals stay
    under half of their thresholds (a slow climb: slow acks show only once they are done)."""

    def __init__(
        self,
        ceiling: int,
        *,
        floor: int = 0,
        overload_floor: int | None = None,
        catch_up_floor: int = 0,
        lag_target: float = DEFAULT_LAG_TARGET_SECONDS,
        ack_margin: float = DEFAULT_ACK_MARGIN_SECONDS,
    ) -> None:
        self.ceiling = max(1, ceiling)
        self.floor = max(0, min(floor, self.ceiling))
        top = self.ceiling // 2 if overload_floor is None else overload_floor
        self.overload_floor = max(self.floor, min(top, self.ceiling))
        self.overloaded = False
        # At most the ceiling; at most the floor turns catching up off.
        self.catch_up_floor = min(catch_up_floor, self.ceiling)
        self.catching_up = False
        # Demand samples since the edge last refused (a fresh start counts as calm).
        self._calm_samples = CALM_SAMPLES
        self.lag_target = lag_target
        self.ack_margin = ack_margin
        self.value = self.ceiling
        # Fastest ack per block of ticks: the baseline is the minimum over the last blocks.
        self._blocks: deque[float] = deque(maxlen=4)
        self._block_fastest = math.inf
        self._block_ticks = 0

    def observe(self, lag: float, slowest_ack: float = 0.0, fastest_ack: float = math.inf) -> int:
        """Feed one probe tick: loop lag, and the slowest and fastest ack since the last tick
        (``fastest_ack`` is ``inf`` when there was none). Returns the new limit."""
        baseline = min(self._block_fastest, fastest_ack, *self._blocks)
        self._remember(fastest_ack)
        excess = slowest_ack - baseline if slowest_ack else 0.0
        floor = self.catch_up_floor if self.catching_up else self.floor
        if self.overloaded:
            # Refused POSTs are cheap 503s and the few accepted ones wait behind a loaded
            # commit anyway: only the loop's responsiveness (the refusals' turnaround) counts.
            floor, excess = self.overload_floor, 0.0
        if lag > self.lag_target or excess > self.ack_margin:
            self.value = max(floor, self.value // 2)
        elif lag < self.lag_target / 2 and excess < self.ack_margin / 2:
            if self.value < self.ceiling:
                self.value += 1
        return self.value

    def hold(self, overloaded: bool) -> bool:
        """Say whether the edge is refusing POSTs; returns True when the limit rose to
        ``overload_floor`` (more events may start now)."""
        self.overloaded = overloaded
        if overloaded:
            self._calm_samples = 0
            self.catching_up = False
        if overloaded and self.value < self.overload_floor:
            self.value = self.overload_floor
            return True
        return False

    @property
    def can_catch_up(self) -> bool:
        """Whether a catch-up floor is set (above the floor); demand samples matter only then."""
        return self.catch_up_floor > self.floor

    def sample_demand(
        self, *, arrived: int, finished: int, binding: bool, acks: int = 0, slow_acks: int = 0
    ) -> bool:
        """Feed one demand sample (every ``DEMAND_SAMPLE_TICKS`` probe ticks): events that
        arrived and finished since the last one, whether the limit held work back (events
        waiting beyond it for most of the period), and how many acks there were and how many
        of them took over ``CATCH_UP_ACK_SECONDS``. Returns whether the limit is catching up;
        when it starts to, the limit rises to ``catch_up_floor`` at once."""
        if self.overloaded:
            self._calm_samples = 0
        else:
            self._calm_samples += 1
        self.catching_up = (
            self.can_catch_up
            and self._calm_samples > CALM_SAMPLES
            and binding
            and arrived < CATCH_UP_RATIO * max(finished, 1)
            and slow_acks <= CATCH_UP_SLOW_ACK_SHARE * acks
        )
        if self.catching_up and self.value < self.catch_up_floor:
            self.value = self.catch_up_floor
        return self.catching_up

    def _remember(self, fastest_ack: float) -> None:
        self._block_fastest = min(self._block_fastest, fastest_ack)
        self._block_ticks += 1
        if self._block_ticks >= _BASELINE_TICKS // 4:
            if self._block_fastest < math.inf:
                self._blocks.append(self._block_fastest)
            self._block_fastest, self._block_ticks = math.inf, 0


class LagProbe:
    """Calls ``on_lag(seconds)`` every ``interval`` seconds with the lag the loop caused itself.

    A timer fires late either because the loop was busy or because the process was not
    scheduled (other processes on the core). Only the first is the workers' doing, so the
    lateness is capped by the loop thread's own CPU time beyond the interval: a loop that
    sat idle while the kernel ran someone else reports no lag.
    """

    def __init__(
        self,
        on_lag: Callable[[float], None],
        *,
        interval: float = DEFAULT_PROBE_INTERVAL_SECONDS,
    ) -> None:
        self._on_lag = on_lag
        self._interval = interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._expected = 0.0
        self._cpu = 0.0

    def start(self) -> None:
        """Start probing on the running loop (idempotent)."""
        if self._handle is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._arm()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self) -> None:
        assert self._loop is not None
        # perf_counter, not loop.time(): uvloop's clock has millisecond resolution.
        self._expected = time.perf_counter() + self._interval
        self._cpu = time.thread_time()
        self._handle = self._loop.call_later(self._interval, self._tick)

    def _tick(self) -> None:
        late = time.perf_counter() - self._expected
        busy = time.thread_time() - self._cpu
        self._arm()
        self._on_lag(max(0.0, min(late, busy - self._interval)))
