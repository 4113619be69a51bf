"""The punch's path in: what a punch is, the driver contract, the registry, the runners.

``punch`` (what drivers emit) → ``driver`` (the contract every driver follows) → ``registry``
(driver name → class, lazily) → ``runner`` (one thread per terminal: open, read, commit to
the store, back off). ``ids`` makes the uuid7 identifiers.
"""
