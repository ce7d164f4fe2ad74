"""The card holders' catalogues (kondge_billing/locale): every message the
pages and the statements use is translated in every language, with the
same placeholders, and the template is what the sources say now."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from kondge_billing import i18n

HOME = Path(__file__).resolve().parents[2]
POT = HOME / "kondge_billing" / "locale" / "messages.pot"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def catalog(path):
    with open(path, "rb") as f:
        return read_po(f)


def test_the_template_is_what_the_sources_say(tmp_path):
    fresh = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F",
                    "babel.cfg", "-k", "_", "-k", "gettext", "-k", "ngettext:1,2",
                    "--no-location", "-o", str(fresh), "."], cwd=HOME, check=True,
                   capture_output=True)
    assert {m.id for m in catalog(fresh) if m.id} == {m.id for m in catalog(POT) if m.id}, \
        "run the extract of docs/portal.md (Translations) and translate what is new"


@pytest.mark.parametrize("language", [l for l in i18n.LANGUAGES if l != "en"])
def test_every_message_is_translated_with_its_placeholders(language):
    path = HOME / "kondge_billing" / "locale" / language / "LC_MESSAGES" / "messages.po"
    translated = {m.id: m for m in catalog(path) if m.id}
    wanted = {m.id for m in catalog(POT) if m.id}
    assert set(translated) == wanted
    for message in translated.values():
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        source = message.id[0] if isinstance(message.id, tuple) else message.id
        assert all(strings) and not message.fuzzy, message.id
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(source)), text


def test_a_language_without_a_catalogue_reads_english():
    assert i18n.translations("de").gettext("Balance") == "Balance"
    assert i18n.translations("zh").gettext("Balance") == "余额"
    assert i18n.best(["de-DE", "fr-CA", "en"]) == "fr"
    assert i18n.best(["xx", None]) == "en"
