"""Statements (bills): a card's calls, charges, refills and totals for a period, as PDF.

The figures come from the ledger: the opening balance is the sum of the
entries before the period, the closing balance the opening plus the entries
in it, so a statement always agrees with v_balance_mismatch. Calls are the
CDRs charged in the period (their ledger entries' time). The operators'
tool reads them here; the web portal through kondge.web_statement
(portal.py); both are put together by `assemble`.

The PDF is written in the card's language (the catalogues of i18n.py) with
fonts embedded from Debian's packages: DejaVu Sans (fonts-dejavu-core) for
Latin, Greek and Cyrillic, and WenQuanYi Micro Hei (fonts-wqy-microhei)
for Chinese, Japanese and Korean, which fpdf2 falls back to for any
character DejaVu lacks.
"""

from datetime import datetime
from decimal import Decimal
from pathlib import Path

from fpdf import FPDF

from .. import i18n
from ..rating.money import ZERO

FONT_DIR = Path("/usr/share/fonts/truetype")
FONTS = {"regular": FONT_DIR / "dejavu" / "DejaVuSans.ttf",
         "bold": FONT_DIR / "dejavu" / "DejaVuSans-Bold.ttf",
         "cjk": FONT_DIR / "wqy" / "wqy-microhei.ttc"}


class StatementError(ValueError):
    pass


def statement(cur, number: str, start: datetime, end: datetime) -> dict:
    if end <= start:
        raise StatementError("--to must be after --from")
    cur.execute("""SELECT c.id, c.number, c.currency, c.category, c.status, c.balance,
                          c.expires_at, c.language, cat.billing, cat.credit_limit
                     FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
                    WHERE c.number = %s""", (number,))
    card = cur.fetchone()
    if card is None:
        raise StatementError(f"no card {number}")
    period = {"card": card["id"], "start": start, "end": end}
    cur.execute("""SELECT coalesce(sum(amount) FILTER (WHERE created_at < %(start)s), 0) AS opening,
                          coalesce(sum(amount) FILTER (WHERE created_at >= %(start)s
                                   AND created_at < %(end)s), 0) AS movement
                     FROM kondge.ledger_entry WHERE card_id = %(card)s""", period)
    sums = cur.fetchone()
    cur.execute("""SELECT d.connect_time, d.created_at, d.destination, d.duration, d.charge,
                          d.uncollected
                     FROM kondge.cdr d
                    WHERE d.card_id = %(card)s
                      AND d.created_at >= %(start)s AND d.created_at < %(end)s
                    ORDER BY d.created_at, d.id""", period)
    calls = cur.fetchall()
    cur.execute("""SELECT created_at, kind, amount, note FROM kondge.ledger_entry
                    WHERE card_id = %(card)s AND kind <> 'call'
                      AND created_at >= %(start)s AND created_at < %(end)s
                    ORDER BY id""", period)
    other = cur.fetchall()
    return assemble(card, start, end, sums["opening"], sums["movement"], calls, other)


def assemble(card: dict, start: datetime, end: datetime, opening: Decimal, movement: Decimal,
             calls: list[dict], other: list[dict]) -> dict:
    """A statement from its parts: the card, the ledger's sums before and in
    the period, the calls charged in it and its other movements."""
    charges = sum((c["charge"] for c in calls), ZERO)
    return {"card": card, "start": start, "end": end, "calls": calls, "movements": other,
            "opening": opening, "closing": opening + movement,
            "charges": charges, "credits": sum((m["amount"] for m in other if m["amount"] > 0), ZERO),
            "debits": sum((m["amount"] for m in other if m["amount"] < 0), ZERO),
            "seconds": sum(c["duration"] for c in calls)}


def _money(amount: Decimal) -> str:
    return f"{amount:,.4f}"


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else ""


#: languages drawn in the CJK font throughout (it has Latin glyphs too);
#: the others in DejaVu, falling back to it for a CJK character
CJK = ("zh", "ja", "ko")


class _Pdf(FPDF):
    def __init__(self, gettext, language):
        super().__init__(format="A4")
        self._ = gettext
        self.add_font("DejaVu", "", FONTS["regular"])
        self.add_font("DejaVu", "B", FONTS["bold"])
        self.add_font("WQY", "", FONTS["cjk"], collection_font_number=0)
        self.add_font("WQY", "B", FONTS["cjk"], collection_font_number=0)
        self.family = "WQY" if language in CJK else "DejaVu"
        if self.family == "DejaVu":
            self.set_fallback_fonts(["WQY"], exact_match=False)

    def font(self, style="", size=10):
        self.set_font(self.family, style, size)

    def footer(self):
        self.set_y(-12)
        self.font(size=8)
        self.cell(0, 8, self._("page %(page)s/%(pages)s") % {"page": self.page_no(),
                                                             "pages": "{nb}"}, align="C")


def _row(pdf, widths, cells, bold=False, aligns=None):
    pdf.font("B" if bold else "", 9)
    for i, (width, text) in enumerate(zip(widths, cells)):
        align = (aligns or "L" * len(cells))[i]
        pdf.cell(width, 6, str(text), border="B" if bold else 0, align=align)
    pdf.ln(6)


def kind_name(gettext, kind: str) -> str:
    """A ledger entry's kind in the reader's language."""
    return {"issue": gettext("issue"), "refill": gettext("refill"), "call": gettext("call"),
            "refund": gettext("refund"), "adjustment": gettext("adjustment"),
            "expiry": gettext("expiry")}.get(kind, kind)


def render_pdf(st: dict, path, language: str = "en") -> None:
    """Draw the statement `st` into the PDF file `path`, in `language`
    (one of i18n.LANGUAGES; another is drawn in English). `path` may also be
    a binary file object."""
    _ = i18n.translations(language).gettext
    card = st["card"]
    currency = card["currency"]
    pdf = _Pdf(_, language)
    pdf.set_title(_("Statement %(card)s") % {"card": card["number"]})
    pdf.set_lang(language)
    pdf.add_page()
    pdf.font("B", 16)
    pdf.cell(0, 10, _("Kondge billing - statement"), new_x="LMARGIN", new_y="NEXT")
    pdf.font(size=10)
    for label, value in (
            (_("Card"), card["number"]),
            (_("Category"), f"{card['category']} ({card['billing']})"),
            (_("Currency"), currency),
            (_("Period"), _("%(start)s to %(end)s") % {"start": _when(st["start"]),
                                                        "end": _when(st["end"])}),
            (_("Opening balance"), _money(st["opening"]))):
        pdf.cell(40, 6, label)
        pdf.cell(0, 6, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    pdf.font("B", 12)
    pdf.cell(0, 8, _("Calls (%(count)s)") % {"count": len(st["calls"])},
             new_x="LMARGIN", new_y="NEXT")
    widths, aligns = (45, 50, 25, 35, 35), "LLRRR"
    _row(pdf, widths, (_("Connected"), _("Destination"), _("Seconds"), _("Charge"),
                       _("Uncollected")), bold=True, aligns=aligns)
    for call in st["calls"]:
        _row(pdf, widths, (_when(call["connect_time"] or call["created_at"]),
                           call["destination"] or "", call["duration"],
                           _money(call["charge"]), _money(call["uncollected"])), aligns=aligns)
    _row(pdf, widths, (_("Total calls"), "", st["seconds"], _money(st["charges"]), ""),
         bold=True, aligns=aligns)
    pdf.ln(4)

    pdf.font("B", 12)
    pdf.cell(0, 8, _("Refills and other movements"), new_x="LMARGIN", new_y="NEXT")
    widths, aligns = (45, 25, 35, 85), "LLRL"
    _row(pdf, widths, (_("Date"), _("Kind"), _("Amount"), _("Note")), bold=True, aligns=aligns)
    for m in st["movements"]:
        _row(pdf, widths, (_when(m["created_at"]), kind_name(_, m["kind"]), _money(m["amount"]),
                           m["note"][:50]), aligns=aligns)
    pdf.ln(4)

    pdf.font("B", 12)
    pdf.cell(0, 8, _("Totals"), new_x="LMARGIN", new_y="NEXT")
    for label, value in ((_("Opening balance"), st["opening"]),
                         (_("Refills and credits"), st["credits"]),
                         (_("Call charges"), -st["charges"]),
                         (_("Other debits"), st["debits"]),
                         (_("Closing balance"), st["closing"])):
        _row(pdf, (60, 40), (label, f"{_money(value)} {currency}"), aligns="LR")
    pdf.output(path if hasattr(path, "write") else str(path))
