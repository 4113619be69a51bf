"""ZKTeco "standalone SDK" (TCP/UDP 4370) terminals: codec, simulator and driver.

``driver.ZkDriver`` is the gateway driver; ``sim.ZkSimulator`` the terminal simulator
(``gatewayctl sim zk``). See docs/drivers-zk.md.
"""
