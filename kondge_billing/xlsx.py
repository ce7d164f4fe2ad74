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
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.filters import AutoFilter
from openpyxl.worksheet.table import Table, TableColumn, TableStyleInfo


def cell(value):
    """A value as a cell: aware times in UTC without zone (Excel has none), lists joined."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return value


def table_name(title: str) -> str:
    """An Excel table name: a letter first, then letters, digits and '_'."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", title)
    return name if name[:1].isalpha() else "T_" + name


def write_table(path, title: str, columns: list[str], rows, progress=None) -> int:
    """Write rows (sequences in column order) as a table; return how many."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=title[:31])
    ws.append(columns)
    count = 0
    for row in rows:
        ws.append([cell(v) for v in row])
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
