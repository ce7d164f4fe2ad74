"""The store: the database and the modules that own its SQL.

db.py holds the connections, migrate.py the schema; each aggregate
(cards, categories, callers, gateways, vouchers, tariffs, audit ...) has
one module that owns its SQL, called by the call service, the CLI
and the portal alike.
"""
