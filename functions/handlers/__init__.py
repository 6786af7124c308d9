"""Handlers: plain functions of (message or request, Services). One module per function of the app."""


class NotBuiltYet(NotImplementedError):
    """A handler declared in function_app.py whose implementation has not landed yet."""
