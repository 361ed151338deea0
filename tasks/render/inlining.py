"""Inline an email's CSS once per distinct markup, not once per message.

Inlining (``css_inline``) parses the whole document, matches every rule against every element and writes
the document out again: it used to be the costliest part of rendering a message. Yet the messages of one
template differ in their values (names, links, prices, codes), far less in their markup. So the HTML part
renders with each value it outputs replaced by a numbered slot; the slotted document is inlined once and
remembered; each message then puts its values back into the slots, escaped the way the inliner writes text
or an attribute. The result is byte for byte what inlining the message itself gives.

A value can change the markup or the styles in a few places, and there the message is inlined whole:

- a value in a ``class``, ``id`` or ``style`` attribute, or in any attribute when the CSS has attribute
  or ``:lang`` selectors (it decides which rules match);
- a value inside ``<style>``, ``<script>`` or other raw text, or inside a comment;
- a value with a carriage return or a NUL (the parser rewrites them);
- a template that captures output and looks at it (``{% set %}...{% endset %}``, ``{% filter %}``,
  ``{% call %}``, or a macro's output used other than printed): there a slot would not be the value.

A value of only white space is no slot: it stays in the markup (white space can change how HTML parses,
e.g. in a table), and so does the white space around a value.
"""

from __future__ import annotations

import re
import weakref
from contextvars import ContextVar
from dataclasses import dataclass, field

import css_inline
import jinja2
import jinja2.nodes
from jinja2 import meta
from markupsafe import Markup

# <style> rules become style="" attributes (many mail clients drop <style>); @media rules stay in a <style>
INLINER = css_inline.CSSInliner(keep_style_tags=False, keep_at_rules=True, load_remote_stylesheets=False)

_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use characters mark a slot: no template or value has them
_SLOT = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
_HTML_SPACE = " \t\n\x0c\r"
_NOT_SLOTTED = re.compile(f"[\r\x00{_OPEN}{_CLOSE}]")  # the parser rewrites \r and \0; the marks are ours
_STYLED_BY = frozenset({"class", "id", "style"})  # attributes that decide which rules apply, or that get rewritten
_RAW_TEXT = frozenset({"script", "style", "xmp", "iframe", "noembed", "noframes", "noscript", "plaintext"})
_TAG = re.compile(r"<(/?)([^\s/>]+)((?:\s+[^\s/>=]+(?:=\"[^\"]*\")?)*)\s*/?>")
_ATTRIBUTE = re.compile(r"\s+([^\s/>=]+)(?:=\"([^\"]*)\")?")
_STYLE = re.compile(r"<style\b[^>]*>(.*?)</style", re.IGNORECASE | re.DOTALL)
_CAPTURES = (jinja2.nodes.AssignBlock, jinja2.nodes.FilterBlock, jinja2.nodes.CallBlock)
_CACHE_SIZE = 4096  # distinct inlined documents kept per process; then the cache starts over


@dataclass
class _Slots:
    values: list[str] = field(default_factory=list)
    usable: bool = True


@dataclass(frozen=True)
class _Inlined:
    """An inlined slotted document: its text between the slots, and each slot's value and place."""

    pieces: tuple[str, ...]  # one more than slots
    slots: tuple[tuple[int, bool], ...]  # (value number, in an attribute)


_recording: ContextVar[_Slots | None] = ContextVar("_recording", default=None)
_inlined: dict[str, _Inlined | None] = {}
# per environment and template: the verdict, and the templates it was reached from (stale once one changes)
_verdicts: weakref.WeakKeyDictionary[jinja2.Environment, dict[str, tuple[bool, tuple[jinja2.Template, ...]]]] = (
    weakref.WeakKeyDictionary()
)


@jinja2.pass_eval_context
def slot_value(eval_ctx: jinja2.nodes.EvalContext, value: object) -> object:
    """The environment's ``finalize``: while an HTML part records, an escaped value becomes a numbered slot.

    Anything else passes untouched: markup (``Markup``, a macro's output), an undefined value (it fails
    as it always did), a value of only white space, and every value of a text part.
    """
    slots = _recording.get()
    if slots is None or not eval_ctx.autoescape or hasattr(value, "__html__") or isinstance(value, jinja2.Undefined):
        return value
    text = str(value)
    lead = text.lstrip(_HTML_SPACE)
    core = lead.rstrip(_HTML_SPACE)
    if not core:
        return value
    if _NOT_SLOTTED.search(text):
        slots.usable = False
        return value
    start = len(text) - len(lead)
    slots.values.append(core)
    return Markup(f"{text[:start]}{_OPEN}{len(slots.values) - 1}{_CLOSE}{text[start + len(core) :]}")


def render_inlined(env: jinja2.Environment, template: jinja2.Template, values: dict[str, object]) -> str:
    """Render an HTML template and inline its CSS: the same as ``INLINER.inline(template.render(values))``."""
    if template.name is None or not slottable(env, template.name):
        return str(INLINER.inline(template.render(values)))
    slots = _Slots()
    token = _recording.set(slots)
    try:
        slotted = template.render(values)
    finally:
        _recording.reset(token)
    inlined = _inline_slotted(slotted, len(slots.values)) if slots.usable else None
    if inlined is None:
        return str(INLINER.inline(template.render(values)))
    out = [inlined.pieces[0]]
    for (number, in_attribute), piece in zip(inlined.slots, inlined.pieces[1:], strict=True):
        value = slots.values[number]
        out.append(_escape_attribute(value) if in_attribute else _escape_text(value))
        out.append(piece)
    return "".join(out)


def _escape_text(value: str) -> str:
    # as the inliner's serialiser writes text
    return value.replace("&", "&amp;").replace("\xa0", "&nbsp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_attribute(value: str) -> str:
    # as the inliner's serialiser writes an attribute value (always in double quotes)
    return value.replace("&", "&amp;").replace("\xa0", "&nbsp;").replace('"', "&quot;")


def _inline_slotted(slotted: str, count: int) -> _Inlined | None:
    """The inlined form of a slotted document, remembered; None when a slot is where a value could matter."""
    if slotted in _inlined:
        return _inlined[slotted]
    if len(_inlined) >= _CACHE_SIZE:
        _inlined.clear()
    found = [int(m[1]) for m in _SLOT.finditer(slotted)]
    result = None
    if sorted(found) == list(range(count)):
        html = str(INLINER.inline(slotted))
        places = _slot_places(html, attributes_matched=any(_matches_attributes(css) for css in _STYLE.findall(slotted)))
        if places is not None and sorted(number for _, number, _ in places) == list(range(count)):
            pieces, slots, at = [], [], 0
            for position, number, in_attribute in places:
                match = _SLOT.match(html, position)
                assert match is not None  # the places are where the slots were found
                pieces.append(html[at:position])
                slots.append((number, in_attribute))
                at = match.end()
            pieces.append(html[at:])
            result = _Inlined(tuple(pieces), tuple(slots))
    _inlined[slotted] = result
    return result


def _matches_attributes(css: str) -> bool:
    return "[" in css or ":lang" in css or ":dir" in css


def _slot_places(html: str, attributes_matched: bool) -> list[tuple[int, int, bool]] | None:
    """Each slot of an inlined document: (position, value number, in an attribute), in document order.

    None if a slot is anywhere but in text or a plain attribute value. The inliner's serialiser writes
    canonical HTML (a ``<`` in text is ``&lt;``; attribute values are double-quoted, a ``"`` in one is
    ``&quot;``), so this small scanner reads it exactly.
    """
    places: list[tuple[int, int, bool]] = []

    def text(start: int, end: int) -> None:
        places.extend((m.start(), int(m[1]), False) for m in _SLOT.finditer(html, start, end))

    def has_slot(start: int, end: int) -> bool:
        return _OPEN in html[start:end]

    at = 0
    while (lt := html.find("<", at)) != -1:
        text(at, lt)
        if html.startswith("<!", lt):  # a comment or the doctype
            end = html.find("-->", lt) + 3 if html.startswith("<!--", lt) else html.find(">", lt) + 1
            if end <= lt or has_slot(lt, end):
                return None
            at = end
            continue
        tag = _TAG.match(html, lt)
        if tag is None:
            return None
        if has_slot(tag.start(1), tag.end(2)):
            return None
        for attribute in _ATTRIBUTE.finditer(html, tag.start(3), tag.end(3)):
            if has_slot(attribute.start(1), attribute.end(1)):
                return None
            if attribute[2] is None or _OPEN not in attribute[2]:
                continue
            if attributes_matched or attribute[1].lower() in _STYLED_BY:
                return None
            places.extend((m.start(), int(m[1]), True) for m in _SLOT.finditer(html, *attribute.span(2)))
        at = tag.end()
        name = tag[2].lower()
        if not tag[1] and name in _RAW_TEXT:
            close = html.lower().find(f"</{name}", at)
            close = len(html) if close == -1 else close
            if has_slot(at, close):
                return None
            at = close
    text(at, len(html))
    return places


def slottable(env: jinja2.Environment, name: str) -> bool:
    """Whether a template and every template it uses print their values without looking at their output.

    Capturing output (``{% set %}...{% endset %}``, ``{% filter %}``, ``{% call %}``) or using a macro's
    output other than printing it could see a slot instead of the value. Decided again when one of the
    templates changed on disk (an environment that reloads templates).
    """
    verdicts = _verdicts.setdefault(env, {})
    known = verdicts.get(name)
    if known is None or (env.auto_reload and not all(t.is_up_to_date for t in known[1])):
        family: dict[str, jinja2.Template] = {}
        known = verdicts[name] = (_prints_only(env, name, family), tuple(family.values()))
    return known[0]


def _prints_only(env: jinja2.Environment, name: str, family: dict[str, jinja2.Template]) -> bool:
    """``slottable`` for one template and those it uses (each added to ``family``)."""
    if name in family:
        return True
    family[name] = env.get_template(name)
    if env.loader is None:
        return False
    tree = env.parse(env.loader.get_source(env, name)[0], name)
    if any(True for _ in tree.find_all(_CAPTURES)):
        return False
    macros = {m.name for m in tree.find_all(jinja2.nodes.Macro)}
    macros |= {n if isinstance(n, str) else n[1] for i in tree.find_all(jinja2.nodes.FromImport) for n in i.names}
    modules = {i.target for i in tree.find_all(jinja2.nodes.Import)} | {"self"}
    printed = {id(child) for output in tree.find_all(jinja2.nodes.Output) for child in output.nodes}
    for call in tree.find_all(jinja2.nodes.Call):
        func = call.node
        captured = (isinstance(func, jinja2.nodes.Name) and func.name in macros | {"caller", "super"}) or (
            isinstance(func, jinja2.nodes.Getattr)
            and isinstance(func.node, jinja2.nodes.Name)
            and func.node.name in modules
        )
        if captured and id(call) not in printed:
            return False
    used = list(meta.find_referenced_templates(tree))
    return all(ref is not None and _prints_only(env, ref, family) for ref in used)
