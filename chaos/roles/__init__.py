"""One role object per Locust process: local (chaos/roles/local.py), master and worker (chaos/distributed/)."""
