"""The technician's tools: what ``gatewayctl`` runs besides reading the store.

``checks`` (a verdict: PASS/WARN/FAIL/SKIP with a fix), ``doctor`` (every check of
PRODUCT.md §6), ``netcheck`` (the broker step by step), ``manual`` (manual punches),
``control_client`` (talking to the running daemon).
"""
