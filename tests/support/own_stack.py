"""A service of a test module's own, beside the suite's: its own KONDGE_VAR
(and so its own cluster, or HA topology, and backups), started once for the
module by one `kondge` command and stopped by another, so that what its tests
do (a restore, a node killed) takes nothing from the other tests."""

import subprocess

from kondge_billing import config
from kondge_billing.store.db import Database
from kondge_billing.store.pins import load_key
from tests.conftest import HOME, KONDGE


class OwnStack:
    """Its settings, PIN key and a connection to its database; `kondge` run
    on its environment. A subclass names the database by connect()."""

    def __init__(self, env, timeout=180):
        self.env = env
        self.timeout = timeout                  # seconds a kondge command may take
        self.settings = config.load(env)
        self.db = self.connect()
        self.key = load_key(self.settings.pin_key_file)

    def connect(self):
        return Database(self.settings.dsn)

    def kondge(self, *args, timeout=None):
        return subprocess.run(KONDGE + list(args), env=self.env, cwd=HOME,
                              capture_output=True, text=True, timeout=timeout or self.timeout)

    def one(self, sql, args=()):
        return self.db.run(lambda cur: (cur.execute(sql, args), cur.fetchone())[1])


def started(own, start, stop):
    """The body of a module fixture (`yield from started(...)`): `kondge
    *start` must succeed; the tests get `own`; afterwards its connection is
    closed and `kondge *stop` run."""
    up = own.kondge(*start)
    assert up.returncode == 0, up.stdout + up.stderr
    yield own
    own.db.close()
    own.kondge(*stop)
