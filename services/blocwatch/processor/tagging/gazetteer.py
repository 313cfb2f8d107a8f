"""Names of actors and places, found in text by Hyperscan or, failing that, one trie regex.

Actors are states (ISO 3166 alpha-3), blocs and organisations; each has a name, other names,
demonyms, capitals used as metonyms ("Pyongyang said") and current leaders ("Putin said"), all
from `data/actors.yaml`. Places belong to regions (`data/regions.yaml`). Matching is
case-sensitive: news capitalises names, and that keeps "us", "polish" and "chad" out.

ASCII text (most news) is searched for every name form at once by a Hyperscan literal database,
which reports each occurrence of each form; the leftmost, then longest, one that ends and starts
at a word boundary is taken, as the trie regex would take it (a test compares the two on the dev
sets, the benchmark items and generated strings of names). That costs a fifth to a quarter of the
regex's instructions on routine news. Other text, and machines without Hyperscan, use the regex.

Compiled with mypyc (blocwatch.compiled): the files' pydantic models live in `dictionaries`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from blocwatch.processor.tagging.dictionaries import ActorEntry, ActorKind, ActorsFile, RegionsFile
from blocwatch.processor.tagging.prefilter import hyperscan

__all__ = ["Gazetteer", "Mention", "trie_pattern"]


class Mention:
    """One actor named in a text: which actor, where. A plain class: mypyc compiles it to a C
    struct, built and read without the Python-level `__new__` and descriptor lookups a named
    tuple costs (it is made for every name in every item)."""

    __slots__ = ("code", "end", "kind", "start")

    def __init__(self, code: str, kind: ActorKind, start: int, end: int) -> None:
        self.code = code
        self.kind = kind
        self.start = start
        self.end = end

    def fields(self) -> tuple[str, ActorKind, int, int]:
        return self.code, self.kind, self.start, self.end

    def __repr__(self) -> str:
        return f"Mention{self.fields()!r}"


@dataclass(frozen=True, slots=True)
class _Target:
    actor: tuple[str, ActorKind] | None
    regions: tuple[str, ...]


_Span = tuple[int, int, _Target]  # a name found: start, end, what it names


def trie_pattern(words: Iterable[str]) -> str:
    """A regex alternation of literal words, factored as a trie.

    One big `a|b|c` alternation tries every word at every position; the trie tries one branch per
    first character, which is what keeps name lookup cheap on long dictionaries. Longer words win.
    """
    trie: _Trie = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return _trie_regex(trie)


_Trie = dict[str, "_Trie"]


def _trie_regex(node: _Trie) -> str:
    ends = "" in node
    branches = [
        re.escape(char) + _trie_regex(child) for char, child in sorted(node.items()) if char
    ]
    if not branches:
        return ""
    if ends:
        # A word may end here: an empty last branch, not `(?:…)?`. Both try the longer words
        # first, but re runs a `?` over a group through its general repeat machinery: the empty
        # branch made the head scan ~35 % faster (same matches).
        return "(?:" + "|".join(branches) + "|)"
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


class Gazetteer:
    """Finds actor mentions and region places in one regex pass over the original text."""

    def __init__(self, actors: ActorsFile, regions: RegionsFile) -> None:
        targets: dict[str, tuple[tuple[str, ActorKind] | None, set[str]]] = {}
        self.names: dict[str, tuple[str, ActorKind]] = {}
        kinds: tuple[tuple[ActorKind, dict[str, ActorEntry]], ...] = (
            ("state", actors.states),
            ("bloc", actors.blocs),
            ("organisation", actors.organisations),
        )
        for kind, entries in kinds:
            for code, entry in entries.items():
                self.names[code] = (entry.name, kind)
                for form in entry.forms():
                    previous = targets.get(form)
                    if previous is not None and previous[0] is not None:
                        raise ValueError(
                            f"actors.yaml: {form!r} is listed for both {previous[0][0]} and {code}"
                        )
                    targets[form] = ((code, kind), previous[1] if previous else set())
        self.region_actors_any: dict[str, list[str]] = {}
        self.region_actors_all: list[tuple[str, frozenset[str]]] = []
        self.region_names = list(regions.regions)
        for region, spec in regions.regions.items():
            for place in spec.places:
                actor, places = targets.get(place, (None, set()))
                places.add(region)
                targets[place] = (actor, places)
            for code in spec.actors_any:
                self.region_actors_any.setdefault(code, []).append(region)
            for group in spec.actors_all:
                self.region_actors_all.append((region, frozenset(group)))
        unknown = {
            code
            for spec in regions.regions.values()
            for code in [*spec.actors_any, *(c for group in spec.actors_all for c in group)]
            if code not in self.names
        }
        if unknown:
            raise ValueError(f"regions.yaml: unknown actor codes {sorted(unknown)}")
        self._targets = {
            form: _Target(actor, tuple(sorted(places))) for form, (actor, places) in targets.items()
        }
        # No look-behind at the start: then the regex engine skips every character that cannot
        # begin a name (most of a text) before trying the trie; `_inside_word` checks the start.
        # The end is checked here: "U.S." ends in a dot, so \b would not close it.
        self._regex = re.compile(trie_pattern(self._targets) + r"(?![\w])")
        # Most names start with a capital, and a regex whose every branch starts with one lets the
        # engine skip all other characters. The few that do not ("the Kremlin", "al-Shabaab")
        # are rare in a text: when none occurs in it, the capitals-only regex finds exactly what
        # the full one would (their branches could never match).
        capitalised = [form for form in self._targets if form[:1].isupper()]
        self._rare_forms = tuple(form for form in self._targets if not form[:1].isupper())
        self._capitalised = re.compile(trie_pattern(capitalised) + r"(?![\w])")
        self._by_index = list(self._targets.values())  # by id in the literal database
        self._lengths = [len(form) for form in self._targets]
        self._database = _literal_database(list(self._targets))

    def scan(self, text: str) -> tuple[list[Mention], set[str]]:
        """Actor mentions in order, and the regions whose places the text names."""
        spans = None
        if self._database is not None and text.isascii():
            spans = self._literal_spans(text)
        return self._found(self._regex_spans(text) if spans is None else spans)

    def _scan_regex(self, text: str) -> tuple[list[Mention], set[str]]:
        """`scan` by the trie regex alone (what the Hyperscan road must agree with)."""
        return self._found(self._regex_spans(text))

    @staticmethod
    def _found(spans: list[_Span]) -> tuple[list[Mention], set[str]]:
        mentions: list[Mention] = []
        regions: set[str] = set()
        for start, end, target in spans:
            if target.actor is not None:
                code, kind = target.actor
                mentions.append(Mention(code, kind, start, end))
            if target.regions:
                regions.update(target.regions)
        return mentions, regions

    def _regex_spans(self, text: str) -> list[_Span]:
        regex = self._capitalised
        for form in self._rare_forms:
            if form in text:
                regex = self._regex
                break
        spans: list[_Span] = []
        for match in regex.finditer(text):
            start, end = match.span()
            if not _inside_word(text, start):  # "Iran" in "Tehrani"
                spans.append((start, end, self._targets[text[start:end]]))
        return spans

    def _literal_spans(self, text: str) -> list[_Span] | None:
        """`_regex_spans` by Hyperscan, for ASCII text (offsets in bytes are offsets in chars);
        None when Hyperscan fails."""
        hits: list[tuple[int, int]] = []  # (end, form id) of every occurrence of a form
        try:
            self._database.scan(text.encode("ascii"), match_event_handler=_hit, context=hits)
        except hyperscan.error:  # e.g. the scratch space busy in another thread
            return None
        lengths, by_index = self._lengths, self._by_index
        size = len(text)
        spans: list[_Span] = []
        taken_to = 0  # what the regex would resume from: the end of the last form it took
        # By start, longest first: the trie regex tries the longer forms first at each position.
        for start, neg_end, i in sorted([(end - lengths[i], -end, i) for end, i in hits]):
            end = -neg_end
            if start < taken_to:
                continue
            if end < size and ((after := text[end]).isalnum() or after == "_"):
                continue  # not a whole word: "Iran" in "Iranian" (a shorter form may be)
            taken_to = end
            if not _inside_word(text, start):  # else the regex took it, then dropped it
                spans.append((start, end, by_index[i]))
        return spans

    def regions_of(self, codes: Sequence[str]) -> set[str]:
        """Regions implied by the actors an item names."""
        present = set(codes)
        found = {region for code in present for region in self.region_actors_any.get(code, ())}
        found.update(region for region, group in self.region_actors_all if group <= present)
        return found


def _inside_word(text: str, start: int) -> bool:
    return start > 0 and ((before := text[start - 1]).isalnum() or before == "_")


def _hit(index: int, start: int, end: int, flags: int, hits: list[tuple[int, int]]) -> None:
    hits.append((end, index))  # start is not tracked (no HS_FLAG_SOM_LEFTMOST): end - length


def _literal_database(forms: list[str]) -> Any:
    """Every ASCII form as a case-sensitive literal (others cannot occur in ASCII text); None
    without Hyperscan or where it cannot build one (an unsupported CPU)."""
    usable = [index for index, form in enumerate(forms) if form.isascii()]
    if hyperscan is None or not usable:
        return None
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    try:
        database.compile(
            expressions=[forms[index].encode("ascii") for index in usable],
            ids=usable,
            elements=len(usable),
            flags=0,
            literal=True,  # the forms are plain strings, not patterns: no escaping needed
        )
    except hyperscan.error:
        return None
    return database
