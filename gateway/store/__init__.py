"""The durable queue: every punch is committed here before anything else happens to it.

``db`` (SQLite WAL, gap-free ``seq``, pending → delivered → pruned, dead letters), ``schema``
(tables and migrations), ``guard`` (a corrupt file is moved aside, a full disk waited out),
``backup`` (online copies, restore).
"""
