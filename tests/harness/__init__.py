"""Real servers for the tests: a Kafka KRaft cluster, etcd with the v2 API, HAProxy.

Each server listens on loopback only, keeps its data in a directory it is given, and is
started and stopped by the test fixtures in ``tests/conftest.py``.
"""
