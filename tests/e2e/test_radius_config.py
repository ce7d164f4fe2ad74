"""The real FreeRADIUS reads what radius_config.py writes as it was meant
(and a list holding gateways that cannot be written still reads, without them):
a configuration check (`freeradius -C`, debug level 3 shows the secrets as
read) of a raddb holding the rendered client list and workers.conf. No
database and no port is needed."""

import shutil
import subprocess

import pytest

from kondge_billing.operations import radius_config as rc
from kondge_billing.store.gateways import Gateway
from kondge_billing.operations.radius_processes import FREERADIUS

pytestmark = pytest.mark.skipif(shutil.which(FREERADIUS) is None, reason="no freeradius")

# Secrets the gateway table accepts that FreeRADIUS would expand or cut
# short if they were written double-quoted or bare.
SECRETS = ["a${b}c", "x$ENV{HOME}y", "it's", "$", "${", "%{User-Name}", "#not-a-comment",
           "a,b}{=", "$ENV{", "'${confdir}'", "}", "S" * 128]
# Secrets a row written with psql could hold that FreeRADIUS would not read
# as given, or that would stop it reading the file: left out of it.
UNWRITABLE = ["back\\", "two\nlines", "caf\u00e9", "L" * 9000, "", 'x"y']

RADIUSD_CONF = """\
prefix = /usr
exec_prefix = /usr
sbindir = ${{exec_prefix}}/sbin
raddbdir = {dir}
confdir = ${{raddbdir}}
run_dir = {dir}
logdir = {dir}
libdir = /usr/lib/freeradius
name = freeradius
log {{
	destination = stderr
}}
proxy_requests = yes
$INCLUDE clients.conf
proxy server {{
	default_fallback = no
}}
$INCLUDE workers.conf
modules {{
}}
server check {{
	listen {{
		type = auth
		ipaddr = 127.0.0.1
		port = 0
	}}
	authorize {{
	}}
}}
"""


def test_freeradius_reads_every_secret_and_name_as_written(tmp_path):
    gateways = [Gateway(i + 1, f"gw-{i}", f"192.0.2.{i + 1}", secret, "cisco", "optional",
                        "originate", 1) for i, secret in enumerate(SECRETS)]
    gateways.append(Gateway(99, "n" * 63, "192.0.2.99", "s", "quintum", "required",
                            "originate", 1))
    unwritable = [Gateway(100 + i, f"bad-{i}", f"198.51.100.{i + 1}", secret, "cisco",
                          "optional", "originate", 1) for i, secret in enumerate(UNWRITABLE)]
    (tmp_path / "radiusd.conf").write_text(RADIUSD_CONF.format(dir=tmp_path))
    rendered = rc.render_gateways(gateways[:3] + unwritable + gateways[3:])
    assert [item.id for item in rendered.skipped] == [gw.id for gw in unwritable]
    rc.write_private(tmp_path / "clients.conf", rendered.text)
    rc.write_private(tmp_path / "workers.conf",
                     rc.workers_conf([("kondge-worker-1", 40000)], "k3y$ENV{HOME}"))
    result = subprocess.run([FREERADIUS, "-XXXC", "-d", str(tmp_path)],
                            capture_output=True, text=True, timeout=30)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    for gw in gateways:
        assert f'secret = "{gw.secret}"' in out
        assert f'shortname = "{gw.name}"' in out
    assert 'secret = "k3y$ENV{HOME}"' in out
    assert "198.51.100." not in out
    assert 'nas_type = "quintum"' in out and "require_message_authenticator = yes" in out
