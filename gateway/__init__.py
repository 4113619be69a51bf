"""attendance-gateway: every punch from the time clocks to the cloud, durably.

Kept import-free on purpose: ``gatewayctl status`` must start fast on a Pi 3, so nothing
heavy (paho, pyzk, pyserial, structlog) is imported until a command needs it.
"""

__version__ = "0.1.0"
