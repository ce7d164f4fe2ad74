"""The gateway directory file: what every FreeRADIUS process of a server serves."""

import os

import pytest

from kondge_billing.errors import UnknownGateway
from kondge_billing.store.gateways import FileDirectory, Gateway, read_revision, write_directory


def gw(id_, address, country_code="", revision=1):
    return Gateway(id_, f"gw-{id_}", address, "", "cisco", "optional", "originate", 1,
                   country_code=country_code, language_map={"zh": "ch"}, revision=revision)


def test_a_replaced_file_is_served_from_the_next_look_up(tmp_path):
    path = tmp_path / "gateways.json"
    write_directory(path, 1, [gw(1, "127.0.0.9")])
    directory = FileDirectory(path)
    assert directory.get("127.0.0.9").country_code == ""
    with pytest.raises(UnknownGateway):
        directory.get("127.0.0.10")
    write_directory(path, 2, [gw(1, "127.0.0.9", "44", 2), gw(2, "127.0.0.10", revision=2)])
    assert directory.get("127.0.0.9").country_code == "44"
    assert directory.get("127.0.0.10").name == "gw-2"
    assert directory.get("127.0.0.9").language("zh") == "ch"
    assert directory.revision == 2 == read_revision(path)


def test_a_removed_gateway_still_stores_its_accounting_but_is_not_served(tmp_path):
    path = tmp_path / "gateways.json"
    write_directory(path, 3, [], removed=[gw(7, "127.0.0.7")])
    directory = FileDirectory(path)
    with pytest.raises(UnknownGateway):
        directory.get("127.0.0.7")
    assert directory.for_accounting("127.0.0.7").id == 7
    with pytest.raises(UnknownGateway):
        directory.for_accounting("127.0.0.8")


def test_no_file_or_a_broken_one_is_a_clear_error_not_a_crash(tmp_path):
    path = tmp_path / "gateways.json"
    directory = FileDirectory(path)
    with pytest.raises(UnknownGateway, match="kondge server start"):
        directory.get("127.0.0.1")
    path.write_text("{not json")
    with pytest.raises(UnknownGateway, match="unreadable"):
        directory.get("127.0.0.1")
    assert read_revision(path) is None
    write_directory(path, 4, [gw(1, "127.0.0.1")])
    assert directory.get("127.0.0.1").id == 1


def test_the_file_holds_no_secret(tmp_path):
    path = tmp_path / "gateways.json"
    write_directory(path, 1, [Gateway(1, "g", "127.0.0.1", "s3cret-value", "cisco",
                                      "optional", "originate", 1)])
    assert "s3cret-value" not in path.read_text()
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
