"""Errors a user can act on. The CLI prints their message, never a traceback."""


class ConnectorError(Exception):
    """Base of every error the engine reports to a user."""


class ConfigError(ConnectorError):
    """A pipeline, mapping, connection or credential setting is wrong; the message says where."""
