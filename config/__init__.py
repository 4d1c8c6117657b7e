"""Profiles: YAML files validated into typed, frozen objects before any user spawns."""
