"""Plugins shipped with turbexp, each registered through an entry point."""
