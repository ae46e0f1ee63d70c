"""Campaign guidelines: Markdown rendered safely (raw HTML escaped, only http(s) and relative links)."""

from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

import markdown
from django.utils.safestring import SafeString, mark_safe
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

SAFE_SCHEMES = {"", "http", "https", "mailto"}


def _safe_url(url: str) -> bool:
    # Browsers ignore control characters and whitespace inside a scheme ("java\tscript:"): strip them first.
    cleaned = "".join(ch for ch in url if ch > " ").strip()
    try:
        return urlsplit(cleaned).scheme.lower() in SAFE_SCHEMES
    except ValueError:
        return False


class _LinkGuard(Treeprocessor):
    def run(self, root: Element) -> None:
        for el in root.iter():
            for attr in ("href", "src"):
                value = el.get(attr)
                if value is not None and not _safe_url(value):
                    el.set(attr, "#")
            if el.tag == "a":
                el.set("rel", "noopener noreferrer")
            if el.tag == "img":
                el.set("loading", "lazy")


class _NoRawHtml(Extension):
    def extendMarkdown(self, md: markdown.Markdown) -> None:
        # Without these, raw HTML blocks and inline tags pass through untouched; with them they are escaped.
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
        md.treeprocessors.register(_LinkGuard(md), "spotcheck_link_guard", 0)


def guidelines_html(text: str) -> SafeString:
    """HTML for a campaign's Markdown guidelines, safe to put on a page as is."""
    html = markdown.markdown(text or "", extensions=[_NoRawHtml(), "sane_lists"], output_format="html")
    return mark_safe(html)  # raw HTML is escaped and URLs filtered above
