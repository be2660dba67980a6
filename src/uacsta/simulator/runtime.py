"""A running simulation: the simulated PBX, its phones on the wire, and the clock.

After anything changes the call model (a request from the server, a scripted action, a PBX
timer) :meth:`Simulation.flush` sends every phone's queued events and requests as INFO.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from uacsta.csta.types import LocalConnectionState
from uacsta.simulator.agent import PhoneAgent
from uacsta.simulator.callmodel import SimPhone
from uacsta.simulator.pbx import SimPbx
from uacsta.simulator.personality import PERSONALITIES, personality

log = logging.getLogger("uacsta.simulator")

VENDORS = ("yealink", "snom", "mitel", "auerswald", "fanvil")


class Simulation:
    def __init__(
        self,
        host: str,
        ports: dict[str, int],
        *,
        password: str,
        domain: str = "sim.invalid",
        external_answer_delay: float | None = 3.0,
        expires: int = 300,
        min_se: int = 90,
    ) -> None:
        self.min_se = min_se
        self.host = host
        self.ports = ports
        self.password = password
        self.expires = expires
        self.pbx = SimPbx(domain, external_answer_delay=external_answer_delay)
        self.agents: dict[str, PhoneAgent] = {}
        self._serial = itertools.count(1)
        self._dirty: dict[str, SimPhone] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._auto_answer: asyncio.Task[None] | None = None

    def add_phone(
        self,
        vendor: str,
        lines: list[str],
        *,
        transport: str | None = None,
        mac: str | None = None,
    ) -> PhoneAgent:
        if vendor not in PERSONALITIES:
            raise ValueError(
                f"unknown vendor {vendor!r}; one of {', '.join(sorted(PERSONALITIES))}"
            )
        p = personality(vendor)
        if mac is None:
            mac = f"{p.mac_oui}{next(self._serial):06X}"
        phone = SimPhone(mac, p, lines, self.pbx.domain, pbx=self.pbx)
        phone.on_outbox = self._dirty_phone
        transport = transport or next(iter(self.ports))
        if transport not in self.ports:
            raise ValueError(f"the server has no {transport} listener for phones")
        server = (transport, self.host, self.ports[transport])
        agent = PhoneAgent(
            self,
            phone,
            server=server,
            password=self.password,
            expires=self.expires,
            min_se=self.min_se,
        )
        self.agents[phone.mac] = agent
        return agent

    async def start(self) -> None:
        await asyncio.gather(*(agent.start() for agent in self.agents.values()))

    def auto_answer(self, delay: float) -> None:
        """Simulated users pick up ringing calls after ``delay`` seconds (demo mode)."""
        self._auto_answer = asyncio.get_running_loop().create_task(self._answer_loop(delay))

    async def _answer_loop(self, delay: float) -> None:
        ringing_since: dict[int, float] = {}
        while True:
            await asyncio.sleep(0.2)
            now = self.now()
            alerting = {}
            for agent in self.agents.values():
                for leg in agent.phone.legs():
                    if leg.state == LocalConnectionState.ALERTING:
                        alerting[id(leg)] = (agent.phone, leg)
            for key in list(ringing_since):
                if key not in alerting:
                    del ringing_since[key]
            for key, (phone, leg) in alerting.items():
                since = ringing_since.setdefault(key, now)
                if now - since >= delay and leg.line is not None:
                    phone.answer(leg.line.number, now)
                    self.flush()

    async def close(self) -> None:
        if self._auto_answer is not None:
            self._auto_answer.cancel()
        if self._timer is not None:
            self._timer.cancel()
        await asyncio.gather(*(agent.close() for agent in self.agents.values()))

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def _dirty_phone(self, phone: SimPhone) -> None:
        self._dirty[phone.mac] = phone

    def flush(self) -> None:
        """Send what the phones queued (only those that queued something), then follow the
        PBX's next timer."""
        dirty, self._dirty = self._dirty, {}
        for mac in dirty:
            agent = self.agents.get(mac)
            if agent is None:
                continue
            for request in agent.phone.drain_requests():
                agent.enqueue(request)
            for event in agent.phone.drain_events():
                agent.enqueue(event)
        self._rearm()

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.pbx.get_timer()
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.pbx.handle_timer(self.now())
        self.flush()

    # --- scripted user actions ----------------------------------------------------------------
    def phone(self, key: str) -> SimPhone:
        """A phone by MAC or by one of its numbers."""
        agent = self.agents.get(key.upper())
        if agent is not None:
            return agent.phone
        found = self.pbx.resolve(key)
        if found is None:
            raise KeyError(f"no simulated phone {key!r}")
        return found[0]

    def dial(self, caller: str, number: str) -> None:
        phone = self.phone(caller)
        phone.dial(number, self.now(), line=caller if caller != phone.mac else None)
        self.flush()

    def answer(self, number: str) -> bool:
        phone = self.phone(number)
        done = phone.answer(number if number != phone.mac else None, self.now())
        self.flush()
        return done

    def hangup(self, number: str) -> bool:
        phone = self.phone(number)
        done = phone.hangup(number if number != phone.mac else None, self.now())
        self.flush()
        return done

    def incoming_call(self, to_number: str, from_number: str) -> None:
        self.pbx.incoming_call(to_number, from_number, self.now())
        self.flush()
