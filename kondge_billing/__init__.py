"""Kondge billing: prepaid calling-card billing behind FreeRADIUS."""

__version__ = "0.1.0"
