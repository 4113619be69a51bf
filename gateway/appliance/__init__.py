"""The Pi appliance: the daemon that wires everything, and what it shows the world.

``daemon`` (the composition root), ``supervisor`` (main loop, watchdog, periodic tasks),
``health`` (one snapshot, fault codes), ``control_server`` (the socket ``gatewayctl`` talks
to), ``leds`` + ``led_backends``, ``sdnotify``, ``sysinfo`` (disk, clock, temperature,
power), ``logs`` (structlog set-up).
"""
