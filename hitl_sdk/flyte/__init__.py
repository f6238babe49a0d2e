"""Flyte 2 integration."""
