"""XLSX files: one sheet, one real Excel table, written in streaming mode.

openpyxl's write-only mode streams rows to the file, so 100,000 rows take
seconds and little memory. The file is created with mode 0600: an issuance
file holds PINs, and the other exports hold customers' calls.
"""

import os
import re
import warnings
from datetime import datetime, timezone

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.filters import AutoFilter
from openpyxl.worksheet.table import Table, TableColumn, TableStyleInfo


# What a spreadsheet would run rather than show: a formula ('=', and '+',
# '-', '@' once edited or saved as CSV) or, after tab or CR, a DDE call.
FORMULA_START = re.compile(r"[\s]*[=+\-@\t\r]")


def cell(value):
    """A value as a cell: aware times in UTC without zone (Excel has none), lists joined."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return value


def text(ws, value: str):
    """A string as text, never as something the spreadsheet runs.

    Gateways and card holders choose some of these strings (an
    Acct-Session-Id, a number as dialled): control characters XLSX cannot
    hold are written as \\xNN, and a string that starts as a formula would
    is stored as a string cell with Excel's quote prefix (shown as written,
    still text when the cell is edited).
    """
    value = ILLEGAL_CHARACTERS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    if not FORMULA_START.match(value):
        return value
    safe = WriteOnlyCell(ws, value=value)
    safe.data_type = "s"
    safe.quotePrefix = True
    return safe


def row_cells(ws, row):
    values = [cell(v) for v in row]
    return [text(ws, v) if isinstance(v, str) else v for v in values]


def table_name(title: str) -> str:
    """An Excel table name: a letter first, then letters, digits and '_'."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", title)
    return name if name[:1].isalpha() else "T_" + name


def write_table(path, title: str, columns: list[str], rows, progress=None) -> int:
    """Write rows (sequences in column order) as a table; return how many."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=title[:31])
    ws.append(row_cells(ws, columns))
    count = 0
    for row in rows:
        ws.append(row_cells(ws, row))
        count += 1
        if progress is not None:
            progress.advance()
    last = f"{get_column_letter(len(columns))}{count + 1}"
    # A table needs a data row; an empty export keeps its header row only.
    if count:
        table = Table(displayName=table_name(title), ref=f"A1:{last}")
        table.tableStyleInfo = TableStyleInfo(name="TableStyleMedium2", showRowStripes=True)
        # write-only mode cannot read the header back: name the columns as
        # the header row does, or Excel repairs (drops) the table.
        table.tableColumns = [TableColumn(id=i, name=str(heading))
                              for i, heading in enumerate(columns, 1)]
        table.autoFilter = AutoFilter(ref=table.ref)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "In write-only mode you must add table columns")
            ws.add_table(table)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as out:
        wb.save(out)
    return count
