"""Jurisdictions and regions that residency rules speak in.

Kept as plain data in the source so validation never needs the network and a
change to the lists is a reviewed diff. Jurisdictions are the officially
assigned ISO 3166-1 alpha-2 codes; regions are names that platform teams and
regulations use for groups of jurisdictions (``EU``, ``EEA``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Officially assigned ISO 3166-1 alpha-2 codes (249), alphabetical.
_ISO_3166_1_ALPHA_2 = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
DE DJ DK DM DO DZ
EC EE EG EH ER ES ET
FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
HK HM HN HR HT HU
ID IE IL IM IN IO IQ IR IS IT
JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ
LA LB LC LI LK LR LS LT LU LV LY
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
NA NC NE NF NG NI NL NO NP NR NU NZ
OM
PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA
RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
UA UG UM US UY UZ
VA VC VE VG VI VN VU
WF WS
YE YT
ZA ZM ZW
"""

JURISDICTIONS: tuple[str, ...] = tuple(_ISO_3166_1_ALPHA_2.split())

_EU = [
    "AT",
    "BE",
    "BG",
    "CY",
    "CZ",
    "DE",
    "DK",
    "EE",
    "ES",
    "FI",
    "FR",
    "GR",
    "HR",
    "HU",
    "IE",
    "IT",
    "LT",
    "LU",
    "LV",
    "MT",
    "NL",
    "PL",
    "PT",
    "RO",
    "SE",
    "SI",
    "SK",
]
_EFTA = ["CH", "IS", "LI", "NO"]

# Region name -> member jurisdictions. Only groups with a stable, commonly
# agreed membership: a residency rule that means different things to
# different readers is worse than none.
_REGIONS: dict[str, tuple[str, ...]] = {
    "EU": tuple(_EU),
    "EEA": tuple(sorted([*_EU, "IS", "LI", "NO"])),
    "EFTA": tuple(_EFTA),
    # The United States with its inhabited territories and minor outlying islands.
    "US": ("AS", "GU", "MP", "PR", "UM", "US", "VI"),
    "DACH": ("AT", "CH", "DE"),
    "BENELUX": ("BE", "LU", "NL"),
    # The Nordic countries with their autonomous territories.
    "NORDICS": ("AX", "DK", "FI", "FO", "GL", "IS", "NO", "SE"),
    "GCC": ("AE", "BH", "KW", "OM", "QA", "SA"),
    # Timor-Leste became the eleventh member in October 2025.
    "ASEAN": ("BN", "ID", "KH", "LA", "MM", "MY", "PH", "SG", "TH", "TL", "VN"),
    # Asia-Pacific as cloud providers group it: East, South-East and South
    # Asia and Oceania.
    "APAC": tuple(
        sorted(
            [
                "AU",
                "BD",
                "BN",
                "BT",
                "CN",
                "FJ",
                "HK",
                "ID",
                "IN",
                "JP",
                "KH",
                "KR",
                "LA",
                "LK",
                "MM",
                "MN",
                "MO",
                "MV",
                "MY",
                "NP",
                "NZ",
                "PG",
                "PH",
                "PK",
                "SB",
                "SG",
                "TH",
                "TL",
                "TW",
                "VN",
                "VU",
                "WS",
                "TO",
                "KI",
                "FM",
                "MH",
                "NR",
                "PW",
                "TV",
            ]
        )
    ),
    # Latin America: Spanish- and Portuguese-speaking Americas.
    "LATAM": (
        "AR",
        "BO",
        "BR",
        "CL",
        "CO",
        "CR",
        "CU",
        "DO",
        "EC",
        "GT",
        "HN",
        "MX",
        "NI",
        "PA",
        "PE",
        "PR",
        "PY",
        "SV",
        "UY",
        "VE",
    ),
}

REGIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {name: frozenset(members) for name, members in _REGIONS.items()}
)
REGION_NAMES: tuple[str, ...] = tuple(_REGIONS)


def is_jurisdiction(code: str) -> bool:
    return code in _JURISDICTION_SET


def members(region: str) -> frozenset[str]:
    """The jurisdictions in ``region``; KeyError names the unknown region."""
    try:
        return REGIONS[region]
    except KeyError:
        raise KeyError(f"unknown region {region!r}; known: {', '.join(REGION_NAMES)}") from None


def regions_of(jurisdiction: str) -> frozenset[str]:
    """Every known region that contains ``jurisdiction``."""
    return frozenset(name for name, codes in REGIONS.items() if jurisdiction in codes)


_JURISDICTION_SET = frozenset(JURISDICTIONS)
