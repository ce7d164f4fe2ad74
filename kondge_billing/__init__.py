"""Kondge billing: prepaid calling-card billing behind FreeRADIUS."""

__version__ = "0.2.0"
