"""uaCSTA phone simulator: simulated SIP desk phones and a small simulated PBX.

The pure, sans-IO core: CSTA requests in, CSTA responses and events out, timers as data.
The SIP side (registration, the CSTA INVITE dialog, INFO transport) is built on top.
"""

from uacsta.simulator.callmodel import (
    Call,
    ExternalParty,
    Leg,
    Line,
    Party,
    PhoneReply,
    SimPhone,
)
from uacsta.simulator.pbx import SimPbx, Timer
from uacsta.simulator.personality import PERSONALITIES, Personality, personality

__all__ = [
    "PERSONALITIES",
    "Call",
    "ExternalParty",
    "Leg",
    "Line",
    "Party",
    "Personality",
    "PhoneReply",
    "SimPbx",
    "SimPhone",
    "Timer",
    "personality",
]
