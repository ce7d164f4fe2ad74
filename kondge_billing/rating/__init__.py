"""Rating: pure functions on Decimal. No clock, no database, no I/O.

engine.py prices a call; tariff_file.py reads a YAML tariff file,
rate_deck.py a carrier's CSV rate deck; codec.py is the JSON shape
shared with the database; money, currencies and phone numbers beside.
"""
