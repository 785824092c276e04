"""Faithful local simulators of the two APIs we integrate, served over real HTTP on loopback.

They live apart from the engine: the engine never imports them, only the CLI's `sim` verb,
the demo and the tests do.
"""
