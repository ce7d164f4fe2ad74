"""Operations: the private PostgreSQL cluster, the FreeRADIUS processes,
the supervisor that runs them, backups and HA.
"""
