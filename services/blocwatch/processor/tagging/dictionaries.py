"""The data model of `data/actors.yaml` and `data/regions.yaml` (validated once, at load).

Kept apart from the gazetteer, which mypyc compiles and which cannot hold pydantic models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ActorEntry", "ActorKind", "ActorsFile", "RegionSpec", "RegionsFile"]

ActorKind = Literal["state", "bloc", "organisation"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActorEntry(_Strict):
    name: str = Field(min_length=1)
    names: list[str] = Field(default_factory=list)
    demonyms: list[str] = Field(default_factory=list)
    capitals: list[str] = Field(default_factory=list)
    leaders: list[str] = Field(default_factory=list)

    def forms(self) -> list[str]:
        return [self.name, *self.names, *self.demonyms, *self.capitals, *self.leaders]


class ActorsFile(_Strict):
    states: dict[str, ActorEntry]
    blocs: dict[str, ActorEntry] = Field(default_factory=dict)
    organisations: dict[str, ActorEntry] = Field(default_factory=dict)


class RegionSpec(_Strict):
    places: list[str] = Field(default_factory=list)
    actors_any: list[str] = Field(default_factory=list)
    actors_all: list[list[str]] = Field(default_factory=list)


class RegionsFile(_Strict):
    regions: dict[str, RegionSpec]
