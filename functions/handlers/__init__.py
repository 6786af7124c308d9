"""Handlers: plain functions of (message or request, Services). One module per function of the app."""
