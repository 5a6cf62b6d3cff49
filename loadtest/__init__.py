"""Shadowline loadtest package."""
