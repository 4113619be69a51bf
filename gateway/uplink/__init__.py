"""The punch's path out: the store drained to the cloud MQTT broker, at least once.

``publisher`` (the only paho user: window, batches, delivered on PUBACK only), ``link`` (the
MQTT connection and its TLS), ``tls_watch`` (a refused certificate is fault 6),
``payloads`` (topics and the JSON of PRODUCT.md §4).
"""
