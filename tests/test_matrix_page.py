"""The matrix page (chaos/static/matrix.html): the ranked cells as a table, every value escaped."""

from __future__ import annotations

import re

from chaos.matrix_table import COLUMNS, Cell, table_html

from .helpers import matrix_cell


def test_the_page_ranks_the_cells_and_shows_each_figure() -> None:
    slow, fast = matrix_cell(1.2, 30, 0, "redis==8.1.0"), matrix_cell(0.8, 5, 0, "redis==8.2.0")
    assert fast.report is not None
    fast.report["summary"]["lost_writes"] = None
    page = table_html([slow, fast], "config/ci.yaml")
    head = re.findall(r"<th[^>]*>([^<]*)</th>", page)
    assert head == ["#", "preset", "version", *COLUMNS]
    rows = re.findall(r"<tr>(.*?)</tr>", page)[1:]  # the first is the head's
    cells = [re.findall(r"<td[^>]*>(?:<a[^>]*>)?([^<]*)", row) for row in rows]
    assert cells == [
        ["1", "no-retry", "redis==8.2.0", "0.8", "5", "0.0", "0", "0", "-", "-", "pass"],
        ["2", "no-retry", "redis==8.1.0", "1.2", "30", "0.0", "0", "0", "0", "-", "pass"],
    ]
    assert "href='no-retry-redis-8.2.0-1.json'" in page and "<div id='facts'>config/ci.yaml</div>" in page


def test_a_cell_without_a_report_says_why_and_no_value_becomes_markup() -> None:
    broken = Cell("x<b>", 0, None, 1, error="<script>alert(1)</script> 'q'")
    page = table_html([broken, matrix_cell(1.0, 1, 0)], "/tmp/<i>p</i>.yaml")
    assert "<th>version</th>" not in page  # no cell ran in an environment of its own
    assert "<b>" not in page and "<i>" not in page and "<script" not in page
    assert "&lt;i&gt;p&lt;/i&gt;.yaml" in page and "x&lt;b&gt;-1.json" in page
    last = re.findall(r"<tr class='breach'>(.*?)</tr>", page)
    assert last == [
        f"<td>2</td><td><a href='x&lt;b&gt;-1.json'>x&lt;b&gt;</a></td><td colspan='{len(COLUMNS)}'>"
        "no report: &lt;script&gt;alert(1)&lt;/script&gt; &#39;q&#39;</td>"
    ]
