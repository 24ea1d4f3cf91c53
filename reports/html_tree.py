"""A document's HTML as a small tree of elements and text, for ``reports/document_pdf.py``.

The documents are HTML that the templates wrote, so the standard library's tokenizer is
enough: no recovery from malformed markup is needed, and a void element is one of the
few the templates use."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = frozenset({"meta", "br", "link", "img", "hr"})


@dataclass
class Element:
    tag: str
    classes: tuple[str, ...] = ()
    attributes: dict[str, str] = field(default_factory=dict)
    children: list[Element | str] = field(default_factory=list)

    def find(self, tag: str, css_class: str | None = None) -> Element | None:
        """The first descendant ``<tag>`` (of ``css_class``, when given), depth first."""
        for child in self.children:
            if isinstance(child, Element):
                if child.tag == tag and (css_class is None or css_class in child.classes):
                    return child
                found = child.find(tag, css_class)
                if found is not None:
                    return found
        return None

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text()
                       for child in self.children)

    def elements(self) -> list[Element]:
        return [child for child in self.children if isinstance(child, Element)]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document")
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        element = Element(tag, tuple(values.get("class", "").split()), values)
        self.open[-1].children.append(element)
        if tag not in VOID:
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.open.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if self.open[-1].tag != tag:
            raise ValueError(f"</{tag}> closes <{self.open[-1].tag}> at line "
                             f"{self.getpos()[0]} of the document")
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)


def parse(html: str) -> Element:
    """The document's tree; an end tag that does not close the element open is an error
    naming its line (the templates close every element they open)."""
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root
