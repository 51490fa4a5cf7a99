"""The next-word app."""
