"""ZKTeco ADMS / "PUSH SDK" terminals: the gateway as the terminals' ``iclock`` HTTP server.

Layout (issue 15, PRODUCT.md §8): ``protocol`` (sans-IO: requests and bodies in, records and
answers out), ``hub`` (per-terminal channels shared by the listener and the drivers, the
unknown-terminal list), ``listener`` (the one HTTP server per daemon), ``driver`` (the
passive ``driver = "adms"`` terminal the runner drives), ``sim`` (``gatewayctl sim adms``).
"""
