"""Translations of what card holders read: the web portal's pages and the
statement PDF. The catalogues are gettext .po files under
kondge_billing/locale/<language>/LC_MESSAGES/messages.po, kept with Babel
(docs/portal.md, Translations); they are compiled in memory when first
used, so the tree holds no build output. English is the source language.
"""

import gettext
import io
from functools import lru_cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parent / "locale"

#: the languages the portal and the statements speak, English first (the source)
LANGUAGES = ("en", "zh", "es", "fr")

#: each language's name in itself, for the language menus
NAMES = {"en": "English", "zh": "中文", "es": "Español", "fr": "Français"}


@lru_cache(maxsize=None)
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of `language`; for English, or a language without a
    catalogue, the source strings themselves."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if language not in LANGUAGES or not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def best(candidates, default: str = "en") -> str:
    """The first of `candidates` (language tags such as 'zh-CN', in order of
    preference) the portal speaks, else `default`."""
    for tag in candidates:
        base = (tag or "").split("-")[0].split("_")[0].lower()
        if base in LANGUAGES:
            return base
    return default
