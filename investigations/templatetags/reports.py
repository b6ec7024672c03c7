"""Reports on pages: Markdown, partly written by a model from log lines, made safe HTML.

A log line can carry anything, and the model may quote it, so the HTML that Markdown
makes is sanitised (nh3, an allow-list) before it reaches the page. A model's "[step N]"
becomes a link to that step of the timeline.
"""

import re

import markdown as md
import nh3
from django import template
from django.utils.safestring import mark_safe

from investigations.signals.report import evidence_gist

register = template.Library()

STEP_REFERENCE = re.compile(r"\[step (\d+)\](?!\()")
ALLOWED_TAGS = {
    "a", "p", "br", "hr", "strong", "em", "b", "i", "code", "pre", "blockquote",
    "ul", "ol", "li", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}


@register.filter
def markdown(text):
    """`text` (Markdown) as sanitised HTML: no script, style, event handler or
    javascript: link survives; links open nothing but http(s), mailto and this page."""
    text = STEP_REFERENCE.sub(r"[step \1](#step-\1)", text or "")
    html = md.markdown(text, extensions=["sane_lists", "tables"], output_format="html")
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)  # noqa: S308 (sanitised by nh3 just above)


MARKDOWN_MARKERS = re.compile(r"(^|\s)#{1,6}\s|\*\*|`")


@register.filter
def gist(text, length=140):
    """`text` in one line without Markdown's headings, bold and code marks, for a
    summary; still plain text (the template escapes it)."""
    line = " ".join(MARKDOWN_MARKERS.sub(r"\1", text or "").split())
    return line if len(line) <= length else line[: length - 1] + "…"


@register.filter
def seconds(duration):
    """A timedelta as "42 s" or "3 min 5 s"."""
    total = int(duration.total_seconds())
    minutes, rest = divmod(total, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


register.filter("evidence_gist", evidence_gist)


@register.filter
def step_of(evidence_steps, item):
    """The timeline step that found an evidence item (by its kind), None if unknown."""
    return (evidence_steps or {}).get(item.get("kind"))
