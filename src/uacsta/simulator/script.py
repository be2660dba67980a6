"""Commands that script simulated phones, for ``uacsta simulate`` (stdin) and for tests.

One command per line; lines are numbers (``100``) or MACs::

    ring 100 from 0301234567   an outside caller rings line 100
    dial 100 200               the user of line 100 dials 200
    answer 100 | hangup 100    the user picks up / hangs up
    dnd 100 on|off             do-not-disturb on the phone's keypad
    silent 100 on|off          the phone stops (or resumes) answering CSTA requests
    drop 100                   the phone's TCP/TLS connection is cut
    offline 100 | online 100   the phone is unplugged / plugged back in
    list                       phones and their calls
"""

from __future__ import annotations

from uacsta.simulator.runtime import Simulation

HELP = __doc__.split("::", 1)[1].rstrip() if __doc__ else ""


async def run_command(sim: Simulation, line: str) -> str:
    """Carry out one command; returns what to print (errors explain the syntax)."""
    words = line.split()
    if not words:
        return ""
    verb, args = words[0].lower(), words[1:]
    try:
        match verb, args:
            case "ring", [number, "from", caller]:
                sim.incoming_call(number, caller)
                return f"{caller} is calling {number}"
            case "dial", [number, target]:
                sim.dial(number, target)
                return f"{number} dials {target}"
            case "answer", [number]:
                return f"{number} answered" if sim.answer(number) else f"nothing rings at {number}"
            case "hangup", [number]:
                return f"{number} hung up" if sim.hangup(number) else f"no call at {number}"
            case "dnd", [number, ("on" | "off") as state]:
                sim.phone(number).set_dnd(
                    number if number in _numbers(sim) else None, state == "on"
                )
                sim.flush()
                return f"do-not-disturb {state} at {number}"
            case "silent", [number, ("on" | "off") as state]:
                _agent(sim, number).stop_answering(state == "on")
                return f"{number} {'stops' if state == 'on' else 'resumes'} answering CSTA"
            case "drop", [number]:
                _agent(sim, number).drop_connection()
                return f"connection of {number} dropped"
            case "offline", [number]:
                await _agent(sim, number).go_offline()
                return f"{number} is offline"
            case "online", [number]:
                _agent(sim, number).come_back()
                return f"{number} is back"
            case "list", []:
                return _listing(sim)
            case "help", []:
                return HELP
    except KeyError as exc:
        return f"error: {exc.args[0]}"
    except RuntimeError as exc:
        return f"error: {exc}"
    return f"unknown command {line.strip()!r}; commands:{HELP}"


def _numbers(sim: Simulation) -> set[str]:
    return {ln.number for a in sim.agents.values() for ln in a.phone.lines}


def _agent(sim: Simulation, key: str):  # type: ignore[no-untyped-def]
    phone = sim.phone(key)
    return sim.agents[phone.mac]


def _listing(sim: Simulation) -> str:
    rows = []
    for agent in sim.agents.values():
        phone = agent.phone
        calls = ", ".join(f"{leg.call_id}:{leg.state}" for leg in phone.legs()) or "idle"
        flags = [f for f, on in (("offline", not phone.online), ("silent", phone.silent)) if on]
        numbers = "/".join(ln.number for ln in phone.lines)
        rows.append(f"{numbers:10} {phone.mac} {phone.personality.key:9} {calls} {' '.join(flags)}")
    return "\n".join(rows)
