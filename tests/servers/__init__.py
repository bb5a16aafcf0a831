"""Real servers and loopback fakes that the test fixtures start (see tests/plugins/servers.py).

Each module owns one server: how to find it, start it on a free 127.0.0.1 port with its data in a
temporary directory, wait until it answers, and stop it.
"""
