"""Remote support over MQTT (PRODUCT.md §10, issue 16): signed command envelopes, their
verification, the audit trail, and the ``remote`` thread that runs them.

``envelope`` (sans-IO: canonical bytes, Ed25519 sign/verify), ``settings`` (the ``[remote]``
section), ``ledger`` (the audit table and the replay cache in the store), ``service`` (the
``remote`` thread), ``results`` (result messages, chunking), ``client`` (the operator's
``gatewayctl remote send``). docs/remote.md is the support team's guide.
"""
