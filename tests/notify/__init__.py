"""Tests of the notification adapters (functions/notify) against local stand-in servers."""
