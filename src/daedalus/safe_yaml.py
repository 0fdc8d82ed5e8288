"""Read YAML from files that may be hostile, with friendly errors and hard limits.

Profile files and run folders can come from other people, so a YAML file must never
execute code, exhaust memory or recursion, or silently lose data. This module wraps
PyYAML's *safe* loader and adds:

* a size limit (:data:`MAX_FILE_BYTES`), checked with ``os.stat`` before reading;
* a nesting limit (:data:`MAX_DEPTH`) and an alias-expansion limit (:data:`MAX_NODES`),
  both checked in one pass over the parser's event stream *before* PyYAML's recursive
  composer and constructor see the document ("billion laughs" files, 100,000 nested
  ``[``);
* refusal of duplicate mapping keys (PyYAML silently keeps the last one), of cyclic
  aliases and of every tag outside the plain YAML types (``!!python/...`` included);
* a ``lines`` map from key paths to 1-based line numbers, so callers can point at the
  line of a bad value.

Every problem is a :class:`~daedalus.errors.ProfileError` whose message starts with
``{source}:{line}: `` (when the line is known) and says how to fix it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from daedalus.errors import ProfileError

#: Largest YAML file read, in bytes (1 MiB). Profiles and run metadata are a few KiB.
MAX_FILE_BYTES = 1_048_576
#: Deepest nesting of mappings and sequences, counted after aliases are expanded.
MAX_DEPTH = 64
#: Most values (scalars, mappings, sequences, keys included) after aliases are expanded.
MAX_NODES = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"
_YAML_TAG_PREFIX = "tag:yaml.org,2002:"
#: Explicit tags a document may use: what the safe constructor builds, plus the merge key
#: (``<<``), the ``=`` value key and ``!`` (the "non-specific" tag: resolve as if untagged).
_ALLOWED_TAGS = frozenset(
    {t for t in yaml.SafeLoader.yaml_constructors if t is not None} | {_MERGE_TAG, _VALUE_TAG, "!"}
)

#: A (path, line) map: ``("cartpole", "config", "batch_size") -> 12``.
Lines = dict[tuple[str, ...], int]


def load_yaml(text: str, source: str) -> tuple[Any, Lines]:
    """Parse YAML safely; return ``(data, lines)``.

    ``lines`` maps every mapping key path to the 1-based line of the key, e.g.
    ``("cartpole", "config", "batch_size") -> 12``; sequence items use their index as a
    string (``("p", "wrappers", "0") -> 7``). Path elements are ``str(key)``. ``source``
    names the text in messages (usually the file path). An empty document gives
    ``(None, {})``.

    Raises:
        ProfileError: the text is too large, nested too deeply, expands past
            :data:`MAX_NODES` values through aliases, has a duplicate key, a disallowed
            tag or a cyclic or undefined alias, or is not valid YAML.
    """
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise _too_large(source, size)
    try:
        # The event pass is iterative and bounds depth and alias expansion, so the
        # recursive composer/constructor below only ever see small, shallow documents.
        _check_events(text, source)
        loader = _Loader(text, source)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, {}
            # Before constructing: construction flattens merge keys in place, and the
            # lines map describes the document as written.
            lines = _collect_lines(node, loader)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _invalid_yaml(source, text, exc) from None
    except RecursionError:
        # Not expected after the event checks; a last guard so a user never sees one.
        raise ProfileError(
            f"{source}: the document is nested too deeply to read. Keep nesting (including "
            f"what aliases and '<<' merges bring in) under {MAX_DEPTH} levels."
        ) from None
    return data, lines


def read_yaml_file(path: Path, *, kind: str = "profile file") -> tuple[Any, Lines]:
    """Read ``path`` (size-checked with ``os.stat`` before reading) and :func:`load_yaml` it.

    ``kind`` names the file in messages ("no such profile file"). Only regular files are
    read, so a link to ``/dev/zero`` or a FIFO cannot hang or exhaust memory.

    Raises:
        ProfileError: the file is missing, not a regular file, larger than
            :data:`MAX_FILE_BYTES`, unreadable, not UTF-8, or rejected by :func:`load_yaml`.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ProfileError(
            f"{path}: no such {kind}. Check the path (relative paths start from {Path.cwd()})."
        ) from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the {kind} ({exc.strerror or exc}).") from None
    if not stat.S_ISREG(info.st_mode):
        what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ProfileError(f"{path}: the {kind} is {what}. Point to a YAML file instead.")
    if info.st_size > MAX_FILE_BYTES:
        raise _too_large(str(path), info.st_size)
    try:
        with open(path, "rb") as f:
            # Bounded read: the file may have grown since the stat.
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the {kind} ({exc.strerror or exc}).") from None
    if len(raw) > MAX_FILE_BYTES:
        raise _too_large(str(path), len(raw), at_least=True)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ProfileError(
            f"{path}:{line}: the {kind} is not UTF-8 text (byte {exc.start}: {exc.reason}). "
            "Save it with UTF-8 encoding."
        ) from None
    return load_yaml(text, str(path))


# --------------------------------------------------------------------------- event pass


def _check_events(text: str, source: str) -> None:
    """Bound depth and alias expansion, and refuse bad tags/aliases, from the event stream.

    ``yaml.parse`` is iterative, unlike the composer, so this is safe on any input. For
    each anchor we remember the expanded size and container height of its subtree; an
    alias then counts as a full copy of it. Counting stops as soon as a limit is passed,
    so a "billion laughs" file costs a few thousand events.
    """
    # One frame per open container: [anchor, expanded node count, container height].
    stack: list[list[Any]] = []
    # anchor -> (count, height) once closed; None while its container is still open.
    anchors: dict[str, tuple[int, int] | None] = {}
    total = 0
    aliased = False  # only for the message: an alias-free file can pass the limit too
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, yaml.DocumentStartEvent):
            anchors = {}  # anchors are scoped to one document, as in the composer
            continue
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            _check_tag(event.tag, source, line)
            if len(stack) >= MAX_DEPTH:
                raise _too_deep(source, line)
            _define_anchor(anchors, event.anchor, source, line, None)
            stack.append([event.anchor, 1, 1])
            total += 1
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, count, height = stack.pop()
            if anchor is not None:
                anchors[anchor] = (count, height)
            if stack:
                stack[-1][1] += count
                stack[-1][2] = max(stack[-1][2], height + 1)
        elif isinstance(event, yaml.ScalarEvent):
            _check_tag(event.tag, source, line)
            _define_anchor(anchors, event.anchor, source, line, (1, 0))
            if stack:
                stack[-1][1] += 1
            total += 1
        elif isinstance(event, yaml.AliasEvent):
            count, height = _resolve_alias(anchors, event.anchor or "", source, line)
            aliased = True
            if len(stack) + height > MAX_DEPTH:
                raise _too_deep(source, line, via_alias=event.anchor)
            if stack:
                stack[-1][1] += count
                stack[-1][2] = max(stack[-1][2], height + 1)
            total += count
        if total > MAX_NODES and not aliased:
            raise ProfileError(
                f"{source}:{line}: the file holds more than {MAX_NODES:,} values (keys, items "
                "and scalars). Profile and run files are far smaller; check that this is the "
                "file you meant, or split it into several files."
            )
        if total > MAX_NODES:
            raise ProfileError(
                f"{source}:{line}: aliases ('*name') expand the file past {MAX_NODES:,} values "
                "(every alias counts as a full copy of its anchored value). Write the values out "
                "or reduce repetition, e.g. anchor a small shared block once and reference it "
                "from fewer places."
            )


def _define_anchor(
    anchors: dict[str, tuple[int, int] | None],
    name: str | None,
    source: str,
    line: int | None,
    value: tuple[int, int] | None,
) -> None:
    if name is None:
        return
    if name in anchors:
        # The composer refuses this too; say it here, with the fix.
        raise ProfileError(
            f"{_where(source, line)}the anchor '&{name}' is defined twice in the document. "
            "Rename one of them (and the aliases that should refer to it)."
        )
    anchors[name] = value


def _resolve_alias(
    anchors: dict[str, tuple[int, int] | None], name: str, source: str, line: int | None
) -> tuple[int, int]:
    if name not in anchors:
        raise ProfileError(
            f"{_where(source, line)}the alias '*{name}' refers to no anchor defined before it. "
            f"Add '&{name}' to the value it should repeat (above this line), or write the value "
            "out."
        )
    found = anchors[name]
    if found is None:
        # A value containing itself: PyYAML would build a cyclic structure, which
        # recursive code downstream (merging, copying, dumping) cannot handle.
        raise ProfileError(
            f"{_where(source, line)}the alias '*{name}' is inside the value anchored as "
            f"'&{name}', so that value would contain itself. Refer to a different anchor or "
            "write the value out."
        )
    return found


def _check_tag(tag: str | None, source: str, line: int | None) -> None:
    if tag is None or tag in _ALLOWED_TAGS:
        return
    shown = "!!" + tag[len(_YAML_TAG_PREFIX) :] if tag.startswith(_YAML_TAG_PREFIX) else tag
    raise ProfileError(
        f"{_where(source, line)}the tag '{shown}' is not allowed. Files are read with the safe "
        "loader, which builds only plain values (mappings, lists, strings, numbers, booleans, "
        "null, timestamps) and never Python objects. Remove the tag and write a plain value."
    )


# --------------------------------------------------------------------------- loader


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing duplicate keys and reporting bad scalars with a line."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        # id(mapping node) -> its own key nodes as written, before merge keys are flattened.
        self._own_keys: dict[int, list[Node]] = {}

    def flatten_mapping(self, node: MappingNode) -> None:
        """Replace ``<<`` merge keys by the merged pairs, lowest precedence first.

        Reimplemented because PyYAML 6.0.4 gets precedence wrong (yaml/pyyaml#953: an
        override inside a merged mapping, or the first of ``<<: [*a, *b]``, can lose
        depending on string interning). Here, as the merge spec says, a mapping's own keys
        beat merged ones and earlier mappings in a ``<<`` list beat later ones; the base
        constructor keeps the last of equal keys, so the result lists the winners last.
        The blow-up this can cause on hostile input is bounded by MAX_NODES beforehand.
        """
        if id(node) in self._own_keys:
            return  # already flattened (an aliased mapping reached again)
        # Remember the keys as written, so a key overriding a merged one (or one reached
        # again through an alias after flattening) is not taken for a duplicate.
        self._own_keys[id(node)] = [k for k, _ in node.value if k.tag != _MERGE_TAG]
        merged: list[tuple[Node, Node]] = []
        own: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                if key_node.tag == _VALUE_TAG:
                    key_node.tag = "tag:yaml.org,2002:str"  # the '=' key is a plain string
                own.append((key_node, value_node))
                continue
            if isinstance(value_node, MappingNode):
                sources = [value_node]
            elif isinstance(value_node, SequenceNode):
                sources = list(reversed(value_node.value))  # earlier ones win: put them last
            else:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"'<<' must be followed by a mapping or a list of mappings, not a "
                    f"{value_node.id}",
                    value_node.start_mark,
                )
            for sub in sources:
                if not isinstance(sub, MappingNode):
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"a '<<' list may hold only mappings, not a {sub.id}",
                        sub.start_mark,
                    )
                self.flatten_mapping(sub)
                merged.extend(sub.value)
        node.value = merged + own

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            self.flatten_mapping(node)
            self._check_duplicates(node, deep)
        # SafeConstructor.construct_mapping calls flatten_mapping again: a no-op by now.
        return super().construct_mapping(node, deep=deep)

    def _check_duplicates(self, node: MappingNode, deep: bool) -> None:
        seen: dict[Any, Node] = {}
        for key_node in self._own_keys.get(id(node), ()):
            # Cached by the constructor, so building the key here costs nothing extra.
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue  # unhashable: the base constructor reports it with its line
            if first is not key_node:
                shown = key_node.value if isinstance(key_node, ScalarNode) else key
                line1, line2 = first.start_mark.line + 1, key_node.start_mark.line + 1
                # A ProfileError passes through load_yaml untouched (only YAMLError is mapped).
                raise ProfileError(
                    f"{self.source}:{line2}: the key '{shown}' appears twice in the same mapping "
                    f"(lines {line1} and {line2}); YAML would silently keep only the last "
                    "value. Keep one of them."
                )

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, IndexError) as exc:
            # The safe constructor lets these escape for values such as '!!int abc',
            # '!!timestamp 2001-13-45' or a 5,000-digit integer; give them a line.
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"cannot read {str(node.value)[:40]!r} as {_short_tag(node.tag)} ({exc})",
                node.start_mark,
            ) from None


def _short_tag(tag: str) -> str:
    return tag[len(_YAML_TAG_PREFIX) :] if tag.startswith(_YAML_TAG_PREFIX) else tag


# --------------------------------------------------------------------------- lines


def _collect_lines(root: Node, loader: _Loader) -> Lines:
    """Map key paths to lines, in document order, visiting each aliased node once.

    Iterative, and an alias (the same node object seen again) is recorded but not walked
    again, so the cost is the size of the file, not of its expansion.
    """
    out: Lines = {}
    visited: set[int] = set()
    # (node, path, line of the key or item that leads to it); the root has no line.
    todo: list[tuple[Node, tuple[str, ...], int | None]] = [(root, (), None)]
    while todo:
        node, path, line = todo.pop()
        if line is not None:
            out[path] = line
        if id(node) in visited:
            continue
        visited.add(id(node))
        children: list[tuple[Node, tuple[str, ...], int | None]] = []
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                path_key = (*path, _key_text(key_node, loader))
                children.append((value_node, path_key, key_node.start_mark.line + 1))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                children.append((item, (*path, str(i)), item.start_mark.line + 1))
        todo.extend(reversed(children))  # reversed: pop in document order
    return out


def _key_text(key_node: Node, loader: _Loader) -> str:
    """``str(key)`` of the key as the loader builds it (``true:`` -> ``"True"``)."""
    if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
        # '<<' and complex keys (a mapping or list as a key, refused later as unhashable).
        return str(key_node.value)
    if key_node.tag == _VALUE_TAG:
        return str(key_node.value)
    return str(loader.construct_object(key_node, deep=True))


# --------------------------------------------------------------------------- messages


def _where(source: str, line: int | None) -> str:
    return f"{source}:{line}: " if line is not None else f"{source}: "


def _too_large(source: str, size: int, at_least: bool = False) -> ProfileError:
    amount = f"at least {size:,}" if at_least else f"{size:,}"
    return ProfileError(
        f"{source}: the file is {amount} bytes, over the {MAX_FILE_BYTES:,}-byte (1 MiB) limit "
        "for YAML files, so it was not read. Check that this is the file you meant; profile "
        "and run files are a few KiB, so split a larger one into several files."
    )


def _too_deep(source: str, line: int | None, via_alias: str | None = None) -> ProfileError:
    how = f" once the alias '*{via_alias}' is expanded" if via_alias is not None else ""
    return ProfileError(
        f"{_where(source, line)}values are nested more than {MAX_DEPTH} levels deep{how}. "
        "Flatten the structure (fewer nested mappings and lists), or check for unclosed "
        "'[' or '{' brackets."
    )


def _invalid_yaml(source: str, text: str, exc: yaml.YAMLError) -> ProfileError:
    mark = getattr(exc, "problem_mark", None)
    line: int | None = mark.line + 1 if mark is not None else None
    if isinstance(exc, yaml.reader.ReaderError):
        # A character YAML forbids (a control character, say): no mark, but a position.
        line = text[: exc.position].count("\n") + 1
        problem = str(exc).splitlines()[0] if str(exc) else "unreadable character"
        return ProfileError(
            f"{_where(source, line)}the file is not valid YAML ({problem}). "
            'Remove the special character, or quote it as an escape such as "\\x07".'
        )
    problem = getattr(exc, "problem", None) or str(exc)
    return ProfileError(
        f"{_where(source, line)}the file is not valid YAML ({problem}; the mistake is on this "
        "line or the one above). "
        "Check indentation and that every 'key: value' pair has a space after the colon."
    )
