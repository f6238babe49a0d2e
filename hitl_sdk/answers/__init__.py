"""The answer path every channel shares (not public)."""
