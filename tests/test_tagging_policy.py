"""Table-driven tests of the tag policy (README "Tagging"), one row per case, pure and fast.

Every sentence here was written for these tests (none comes from the evaluation sets).
"""

from __future__ import annotations

import pytest

from blocwatch.processor.tagging import tag_fields, tag_text

# (text, expected labels, a subtype that must be among the tags or None)
CASES: list[tuple[str, set[str], str | None]] = [
    # --- alliance: pacts, partnerships, agreements, accession
    (
        "Russia and North Korea signed a mutual defence pact in Pyongyang.",
        {"alliance"},
        "defence_pact",
    ),
    ("The two presidents signed a comprehensive strategic partnership treaty.", {"alliance"}, None),
    ("Manila and Tokyo sealed a reciprocal access agreement for their troops.", {"alliance"}, None),
    (
        "Ghana and Togo signed a memorandum of understanding on defence cooperation.",
        {"alliance"},
        None,
    ),
    (
        "Vietnam and Indonesia signed an agreement to expand rice trade next year.",
        {"alliance"},
        "agreement",
    ),
    (
        "Finland formally joined NATO on Tuesday, doubling the alliance's border with Russia.",
        {"alliance"},
        "accession",
    ),
    (
        "Sweden became the 32nd member of the alliance after Hungary ratified its accession.",
        {"alliance"},
        "accession",
    ),
    (
        "India and France agreed to deepen defence cooperation in the Indian Ocean.",
        {"alliance"},
        None,
    ),
    # --- alliance: material cooperation and aid
    (
        "Germany will send more Leopard tanks and air defence systems to Ukraine.",
        {"alliance"},
        "arms_transfer",
    ),
    (
        "The State Department approved a $1 billion arms sale to Poland.",
        {"alliance"},
        "arms_transfer",
    ),
    (
        "Washington announced a new $400 million military aid package for Kyiv.",
        {"alliance"},
        "military_aid",
    ),
    (
        "Japan and South Korea restored their military intelligence-sharing pact.",
        {"alliance"},
        None,
    ),
    (
        "Spain pledged unwavering support for Morocco in its dispute, the minister said.",
        {"alliance"},
        "military_aid",
    ),
    (
        "Norway will give Mozambique a grant of 40 million dollars for rural roads.",
        {"alliance"},
        "economic_aid",
    ),
    (
        "Chile agreed to extradite two suspects wanted in Peru for fraud.",
        {"alliance"},
        "judicial_cooperation",
    ),
    ("France offered to send peacekeepers to the border region.", {"alliance"}, "military_aid"),
    ("Egypt expressed its willingness to cooperate with Sudan on water.", {"alliance"}, None),
    ("Brazil and China agreed to cooperate on energy and infrastructure.", {"alliance"}, None),
    # --- both labels: joint exercises, joint strikes, treaty amid a missile crisis
    (
        "Russia and China began joint naval drills in the Sea of Japan.",
        {"alliance", "escalation"},
        "joint_exercise",
    ),
    (
        "US and South Korean forces staged combined air exercises near the border.",
        {"alliance", "escalation"},
        None,
    ),
    (
        "The United States and Britain launched strikes on militia targets in Iraq.",
        {"alliance", "escalation"},
        None,
    ),
    (
        "Seoul and Washington signed a security pact as North Korea test-fired missiles.",
        {"alliance", "escalation"},
        None,
    ),
    # --- escalation: threats and ultimatums
    ("North Korea threatened to turn Seoul into a sea of fire.", {"escalation"}, "threat"),
    (
        "The minister warned that any incursion would be met with a military response.",
        {"escalation"},
        "threat",
    ),
    (
        "Turkey gave the militia an ultimatum to leave the border town within 48 hours.",
        {"escalation"},
        "ultimatum",
    ),
    ("Iran warned of retaliation if its ships were attacked.", {"escalation"}, "threat"),
    ("Pyongyang paraded new ICBMs through the capital.", {"escalation"}, "exercise"),
    # --- escalation: force posture
    (
        "Pyongyang test-fired two short-range ballistic missiles into the sea.",
        {"escalation"},
        "weapons_test",
    ),
    ("Iran conducted a missile test in the Gulf on Sunday.", {"escalation"}, "weapons_test"),
    (  # into the sea: a launch, not a strike
        "The North fired two short-range missiles into the sea off its coast on Monday.",
        {"escalation"},
        "weapons_test",
    ),
    ("Russian forces fired missiles into the city overnight.", {"escalation"}, "attack"),
    (
        "The North announced it will hold live-fire drills near the maritime border next week.",
        {"escalation"},
        "exercise",
    ),
    ("China staged large-scale military exercises around Taiwan.", {"escalation"}, "exercise"),
    (
        "Serbia put its army on high alert over rising tension in Kosovo.",
        {"escalation"},
        "mobilisation",
    ),
    ("Moscow announced a partial mobilisation of reservists.", {"escalation"}, "mobilisation"),
    # --- escalation: reduce relations, sanctions, expulsions
    ("The EU imposed new sanctions on Iranian drone makers.", {"escalation"}, "sanction"),
    ("Washington imposed an embargo on oil exports from the country.", {"escalation"}, "sanction"),
    ("Niger cut diplomatic ties with Ukraine on Tuesday.", {"escalation"}, "reduce_relations"),
    ("Poland recalled its ambassador from Minsk.", {"escalation"}, "reduce_relations"),
    ("Estonia expelled two Russian diplomats for espionage.", {"escalation"}, "expulsion"),
    (
        "Seoul suspended the 2018 military agreement with the North.",
        {"escalation"},
        "reduce_relations",
    ),
    ("The government broke off talks with the rebels.", {"escalation"}, "reduce_relations"),
    ("The junta banned opposition parties and imposed a curfew.", {"escalation"}, "coercion"),
    ("Bulldozers demolished dozens of homes in the occupied village.", {"escalation"}, None),
    # --- escalation: coercion, seizures
    ("Iranian commandos seized an oil tanker in the Strait of Hormuz.", {"escalation"}, "seizure"),
    (
        "Chinese coast guard ships fired water cannon at a Philippine supply boat.",
        {"escalation"},
        "coercion",
    ),
    (
        "Police arrested the opposition leader and four journalists at dawn.",
        {"escalation"},
        "coercion",
    ),
    (
        "The junta imposed a curfew and martial law in the northern region.",
        {"escalation"},
        "coercion",
    ),
    ("Gunmen abducted twelve aid workers on the road to the camp.", {"escalation"}, "abduction"),
    # --- escalation: violence
    (
        "Indian and Chinese troops clashed on the disputed border, leaving 20 soldiers dead.",
        {"escalation"},
        "border_clash",
    ),
    ("Israeli airstrikes hit targets in Gaza overnight.", {"escalation"}, "attack"),
    ("Russian artillery shelled the town for a third day.", {"escalation"}, "attack"),
    ("A suicide bomber killed 14 people at a checkpoint in the capital.", {"escalation"}, "attack"),
    (
        "Rebels captured the provincial capital after heavy fighting with the army.",
        {"escalation"},
        "fighting",
    ),
    ("Militants attacked an army post, killing five soldiers.", {"escalation"}, "attack"),
    (
        "Investigators found the regime used chlorine gas against civilians.",
        {"escalation"},
        "attack",
    ),
    (
        "Witnesses described a massacre of villagers by the militia.",
        {"escalation"},
        "mass_violence",
    ),
    ("Security forces opened fire on protesters, killing three.", {"escalation"}, "coercion"),
    ("Soldiers fired on a crowd of villagers, killing eight.", {"escalation"}, "attack"),
    ("The government ordered the closure of two opposition newspapers.", {"escalation"}, None),
    ("Beijing suspended imports of beef from the country.", {"escalation"}, "sanction"),
    ("Troops occupied the airport after a night of shooting.", {"escalation"}, "fighting"),
    (
        "Israel said it would respond forcefully to any attack from Lebanon.",
        {"escalation"},
        "threat",
    ),
    ("France will provide Mali with military equipment and training.", {"alliance"}, None),
    ("Turkey's parliament ratified Sweden's NATO membership.", {"alliance"}, "accession"),
    # --- neither: statements, meetings, yielding, criticism, protests, disasters, crime
    ("The foreign ministers met in Geneva to discuss the crisis.", set(), None),
    ("The president praised the role of the mediators.", set(), None),
    ("The government lifted sanctions on the airline after talks.", set(), None),
    ("Rebels released the three hostages on Sunday.", set(), None),
    ("The two sides agreed on a ceasefire and a prisoner exchange.", set(), None),
    ("The ministry condemned the statement as irresponsible.", set(), None),
    ("Thousands of protesters marched in the capital to demand new elections.", set(), None),
    ("Police used tear gas to disperse protesters outside parliament.", set(), None),
    ("The UN will provide emergency food aid to flood victims.", set(), None),
    ("An earthquake killed at least 30 people in the mountain villages.", set(), None),
    ("Police arrested two men after an attempted robbery at a bank.", set(), None),
    ("Customs officers seized a cache of weapons and ammunition at the port.", set(), None),
    ("The central bank raised interest rates for the fifth time this year.", set(), None),
    ("Red Cross convoys delivered food and medicine to the besieged city.", set(), None),
    ("The army withdrew its troops from the border town.", set(), None),
    ("The king pardoned 300 prisoners to mark the holiday.", set(), None),
    ("An explosion at a chemical plant killed four workers.", set(), None),
    ("The opposition leader won the presidential election by a narrow margin.", set(), None),
    ("The government is raising its defence budget to 2 percent of GDP.", set(), None),
]


@pytest.mark.parametrize(("text", "labels", "subtype"), CASES, ids=[c[0][:50] for c in CASES])
def test_policy(text: str, labels: set[str], subtype: str | None) -> None:
    tagging = tag_fields([("text", text)])
    assert {tag.label for tag in tagging.tags} == labels, [
        (t.label, t.subtype, [e.text for e in t.evidence]) for t in tagging.tags
    ]
    if subtype is not None:
        assert subtype in {tag.subtype for tag in tagging.tags}


# Not events: denials, refusals, negation, hypotheticals, plans under discussion, appeals.
NOT_EVENTS = [
    "Officials denied plans to sign a defence pact with Moscow.",
    "Austria did not join the alliance and has no plans to join NATO.",
    "Rumours of a mutual defence treaty between the two were dismissed.",
    "The two governments agreed to start talks on a reciprocal troops agreement.",
    "Analysts say the countries could sign a security pact next year.",
    "The opposition urged the government to send troops to help its neighbour.",
    "The army did not carry out any missile test this week, the ministry said.",
    "The president refused to impose sanctions on the exporters.",
    "Ministers are considering an arms deal with the kingdom.",
]


@pytest.mark.parametrize("text", NOT_EVENTS, ids=[t[:50] for t in NOT_EVENTS])
def test_negated_and_hypothetical_are_not_events(text: str) -> None:
    tagging = tag_fields([("text", text)])
    assert tagging.tags == [], [(t.label, t.subtype) for t in tagging.tags]


def test_threats_and_announced_drills_are_events_even_when_conditional() -> None:
    threat = tag_text("Pyongyang threatened nuclear strikes if the drills go ahead")
    assert "escalation" in {t.label for t in threat.tags}
    drills = tag_text("The navy will hold live-fire exercises off the coast next week")
    assert {t.subtype for t in drills.tags} == {"exercise"}


def test_each_tag_carries_its_codes() -> None:
    tagging = tag_text("North Korea test-fired an intercontinental ballistic missile")
    (tag,) = tagging.tags
    assert (tag.label, tag.subtype, tag.cameo, tag.plover) == (
        "escalation",
        "weapons_test",
        "150",
        "MOBILIZE",
    )
    assert -10 <= tag.intensity < 0 < tag.confidence <= 1
    alliance = tag_text("Greece and France signed a defence cooperation agreement").tags[0]
    assert (alliance.label, alliance.plover) == ("alliance", "AGREE")
    assert alliance.intensity > 0
