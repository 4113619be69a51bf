"""Test and demo rigs: a private Mosquitto broker, a test PKI, a fault-injecting TCP proxy and
an MQTT subscriber that records what arrives.

These are product code (``gatewayctl demo``, ``bench/`` and the test suite all use them), but
nothing in the daemon imports them. Import the submodules directly; this package stays
import-free so that importing ``gateway.devkit.certs`` does not pull in paho.
"""
