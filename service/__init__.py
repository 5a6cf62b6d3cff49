"""Shadowline service package."""
