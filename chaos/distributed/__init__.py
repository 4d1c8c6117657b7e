"""Distributed runs: the master's and the workers' roles, and the messages between them."""
