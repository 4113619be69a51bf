"""The ZK terminal simulator (``gatewayctl sim zk``, ``python -m drivers.zk_terminal.sim``).

``device`` is the terminal (its log, users, clock and faults); ``protocol`` answers each
command as a terminal does; ``server`` is the network side (TCP/UDP sessions, framing);
``faults`` are the misbehaviours tests arm. The dependencies point one way:
device → protocol → server → faults.
"""

from drivers.zk_terminal.sim.cli import demo_simulator, main
from drivers.zk_terminal.sim.device import SimUser, ZkSimulator

__all__ = ["SimUser", "ZkSimulator", "demo_simulator", "main"]
