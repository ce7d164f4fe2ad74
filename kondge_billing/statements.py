"""Statements (bills): a card's calls, charges, refills and totals for a period, as PDF.

The figures come from the ledger: the opening balance is the sum of the
entries before the period, the closing balance the opening plus the entries
in it, so a statement always agrees with v_balance_mismatch. Calls are the
CDRs charged in the period (their ledger entries' time).
"""

from datetime import datetime
from decimal import Decimal

from fpdf import FPDF

from .money import ZERO


class StatementError(ValueError):
    pass


def statement(cur, number: str, start: datetime, end: datetime) -> dict:
    if end <= start:
        raise StatementError("--to must be after --from")
    cur.execute("""SELECT c.id, c.number, c.currency, c.category, c.status, c.balance,
                          c.expires_at, cat.billing, cat.credit_limit
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
    charges = sum((c["charge"] for c in calls), ZERO)
    return {"card": card, "start": start, "end": end, "calls": calls, "movements": other,
            "opening": sums["opening"], "closing": sums["opening"] + sums["movement"],
            "charges": charges, "credits": sum((m["amount"] for m in other if m["amount"] > 0), ZERO),
            "debits": sum((m["amount"] for m in other if m["amount"] < 0), ZERO),
            "seconds": sum(c["duration"] for c in calls)}


def _money(amount: Decimal) -> str:
    return f"{amount:,.4f}"


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else ""


class _Pdf(FPDF):
    def footer(self):
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.cell(0, 8, f"page {self.page_no()}/{{nb}}", align="C")


def _row(pdf, widths, cells, bold=False, aligns=None):
    pdf.set_font("Helvetica", "B" if bold else "", 9)
    for i, (width, text) in enumerate(zip(widths, cells)):
        align = (aligns or "L" * len(cells))[i]
        pdf.cell(width, 6, str(text), border="B" if bold else 0, align=align)
    pdf.ln(6)


def render_pdf(st: dict, path) -> None:
    card = st["card"]
    currency = card["currency"]
    pdf = _Pdf(format="A4")
    pdf.set_title(f"Statement {card['number']}")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "Kondge billing - statement", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for label, value in (
            ("Card", card["number"]),
            ("Category", f"{card['category']} ({card['billing']})"),
            ("Currency", currency),
            ("Period", f"{_when(st['start'])} to {_when(st['end'])}"),
            ("Opening balance", _money(st["opening"]))):
        pdf.cell(40, 6, label)
        pdf.cell(0, 6, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, f"Calls ({len(st['calls'])})", new_x="LMARGIN", new_y="NEXT")
    widths, aligns = (45, 50, 25, 35, 35), "LLRRR"
    _row(pdf, widths, ("Connected", "Destination", "Seconds", "Charge", "Uncollected"),
         bold=True, aligns=aligns)
    for call in st["calls"]:
        _row(pdf, widths, (_when(call["connect_time"] or call["created_at"]),
                           call["destination"] or "", call["duration"],
                           _money(call["charge"]), _money(call["uncollected"])), aligns=aligns)
    _row(pdf, widths, ("Total calls", "", st["seconds"], _money(st["charges"]), ""),
         bold=True, aligns=aligns)
    pdf.ln(4)

    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Refills and other movements", new_x="LMARGIN", new_y="NEXT")
    widths, aligns = (45, 25, 35, 85), "LLRL"
    _row(pdf, widths, ("Date", "Kind", "Amount", "Note"), bold=True, aligns=aligns)
    for m in st["movements"]:
        _row(pdf, widths, (_when(m["created_at"]), m["kind"], _money(m["amount"]),
                           m["note"][:50]), aligns=aligns)
    pdf.ln(4)

    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Totals", new_x="LMARGIN", new_y="NEXT")
    for label, value in (("Opening balance", st["opening"]),
                         ("Refills and credits", st["credits"]),
                         ("Call charges", -st["charges"]),
                         ("Other debits", st["debits"]),
                         ("Closing balance", st["closing"])):
        _row(pdf, (60, 40), (label, f"{_money(value)} {currency}"), aligns="LR")
    pdf.output(str(path))
