"""Shadowline retrain package."""
