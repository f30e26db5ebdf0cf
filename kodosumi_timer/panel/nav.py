"""Our templates beside kodosumi's, and the "Schedules" item in kodosumi's navigation.

Our directory comes first, so our ``_nav.html`` replaces kodosumi's; it includes
kodosumi's own nav (reachable as ``kodosumi/_nav.html``) and inserts our item, so
kodosumi's links stay exactly as kodosumi ships them.
"""

import re
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, PrefixLoader
from markupsafe import Markup

TEMPLATES = Path(__file__).parent / "templates"
SCHEDULE_URL = "/admin/schedule"

_LEFT_ITEM = (f'<a href="{SCHEDULE_URL}" data-nav="schedules">\n        <i>schedule</i>\n'
              "        <div>Schedules</div>\n    </a>\n    ")
_BOTTOM_ITEM = (f'<a href="{SCHEDULE_URL}" data-nav="schedules">\n'
                "        <i>schedule</i>\n    </a>\n    ")
_NAV = re.compile(r"(<nav\b[^>]*>)(.*?)(</nav>)", re.S)
_ANCHOR = '<a href="/admin/routes">'


def with_schedule_nav(html: str) -> Markup:
    """Insert the Schedules item before "Control" in every kodosumi nav bar."""

    def insert(match: re.Match[str]) -> str:
        opening, body, closing = match.groups()
        if SCHEDULE_URL in body:
            return match.group(0)
        item = _BOTTOM_ITEM if "bottom" in opening else _LEFT_ITEM
        if _ANCHOR in body:
            body = body.replace(_ANCHOR, item + _ANCHOR, 1)
        else:  # kodosumi moved its links: still offer ours, at the end
            body = body + item
        return opening + body + closing

    return Markup(_NAV.sub(insert, str(html)))


def install_templates(environment: Any) -> None:
    """Put our templates in front of kodosumi's on the app's Jinja environment."""
    original: BaseLoader = environment.loader
    environment.loader = ChoiceLoader([
        FileSystemLoader(str(TEMPLATES)),
        PrefixLoader({"kodosumi": original}),
        original,
    ])
    environment.filters["with_schedule_nav"] = with_schedule_nav
