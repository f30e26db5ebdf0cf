"""The Timer page's SVG charts (pure): valid XML, bars in proportion, empty data said."""

import re
import xml.etree.ElementTree as ET

from kodosumi_timer.panel.charts import Bar, column_chart, minute_chart, row_chart

SVG = "{http://www.w3.org/2000/svg}"


def parsed(markup: str) -> ET.Element:
    root = ET.fromstring(str(markup))  # raises on anything that is not well-formed XML
    assert root.tag == f"{SVG}svg"
    return root


def bars(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}rect") if e.get("class") == "bar"]


def test_columns_are_valid_svg_with_text_alternatives_and_heights_in_proportion():
    root = parsed(column_chart([Bar("a", 10), Bar("b", 5), Bar("c", 0)],
                               title="Late <launches>", desc="a: 10 & b: 5"))
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and title.text == "Late <launches>"
    assert desc is not None and desc.text == "a: 10 & b: 5"
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    heights = [float(r.get("height", "")) for r in bars(root)]
    assert heights[0] > 0 and abs(heights[0] / heights[1] - 2) < 0.02 and heights[2] == 0
    # each bar tells its value when hovered
    assert [r.find(f"{SVG}title").text for r in bars(root)] == ["a: 10", "b: 5", "c: 0"]


def test_colours_come_from_the_page_so_light_and_dark_both_read():
    markup = str(column_chart([Bar("ok", 3), Bar("late", 1, bad=True)], title="t", desc="d"))
    assert 'fill="currentColor"' in markup
    assert "var(--primary" in markup and "var(--error" in markup
    assert not re.search(r'fill="#', markup)  # no fixed colour outside var() fallbacks


def test_rows_are_proportional_and_widths_fit_the_chart():
    root = parsed(row_chart([Bar("finished", 40), Bar("error", 10, bad=True)],
                            title="t", desc="d", width=480))
    widths = [float(r.get("width", "")) for r in bars(root)]
    assert abs(widths[0] / widths[1] - 4) < 0.02
    assert max(widths) <= 480


def test_empty_data_draws_the_axis_and_says_so():
    for markup in (column_chart([], title="t", desc="d"), row_chart([], title="t", desc="d"),
                   column_chart([Bar("a", 0)], title="t", desc="d"),
                   minute_chart([0] * 60, [], title="t", desc="d")):
        root = parsed(markup)
        texts = " ".join(e.text or "" for e in root.iter(f"{SVG}text"))
        assert "no data" in texts or "no slots" in texts


def test_a_minute_chart_is_one_path_with_one_stroke_per_busy_minute():
    counts = [0] * 1440
    counts[540], counts[541], counts[600] = 200, 100, 1
    root = parsed(minute_chart(counts, [(0, "00:00"), (540, "09:00")], marks=[540],
                               title="Coming", desc="d"))
    paths = list(root.iter(f"{SVG}path"))
    assert len(paths) == 1
    strokes = re.findall(r"v-([\d.]+)", paths[0].get("d", ""))
    assert len(strokes) == 3
    assert abs(float(strokes[0]) / float(strokes[1]) - 2) < 0.02
    assert [c.find(f"{SVG}title").text for c in root.iter(f"{SVG}circle")] == ["200 slots"]
    assert "09:00" in [e.text for e in root.iter(f"{SVG}text")]
    # a day of minutes stays a small document
    assert len(str(minute_chart([1] * 1440, [], title="t", desc="d"))) < 60_000


def test_labels_are_escaped():
    markup = column_chart([Bar("<script>", 1)], title="t", desc="d")
    assert "<script>" not in str(markup)
    parsed(markup)
