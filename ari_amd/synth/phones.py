"""English-like phones for the synthetic voice: an ARPAbet inventory with formant targets and
durations, a small pronouncing lexicon for the phrases the scenes say, and a crude
letter-to-sound fallback so that any text (names, babble) can be spoken.

Nothing here needs to be intelligible: the point is that the sequence of vowels, stops,
fricatives, nasals and glides, their durations and their formant movements have the
statistics of English, so energy and spectral analysis sees speech.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Phone:
    """One phone's targets, for an adult male voice (the voice scales formants)."""

    name: str
    kind: str  # vowel, diph, stop, fric, affr, nasal, liquid, glide, aspirate
    f: tuple[float, float, float]  # F1-F3 target (diphthongs: the start)
    dur_ms: float  # inherent duration (Klatt 1979-like)
    voiced: bool
    av_db: float = 0.0  # voicing level relative to a stressed vowel
    f_end: tuple[float, float, float] | None = None  # diphthong end target
    noise: str | None = None  # noise shape: s, sh, f, lab, alv, vel, asp
    an_db: float = -60.0  # noise level relative to a stressed vowel
    place: str = ""  # lab, alv, vel (stops, nasals)


def _p(*args: Any, **kw: Any) -> Phone:
    return Phone(*args, **kw)


# Formants: Hillenbrand et al. (1995) male means, rounded; durations after Klatt (1979).
PHONES: dict[str, Phone] = {
    p.name: p
    for p in [
        _p("IY", "vowel", (320, 2290, 3010), 155, True, -1.0),
        _p("IH", "vowel", (430, 2030, 2680), 135, True, 0.0),
        _p("EY", "diph", (480, 2090, 2690), 190, True, 0.5, f_end=(360, 2250, 2850)),
        _p("EH", "vowel", (580, 1800, 2600), 150, True, 1.0),
        _p("AE", "vowel", (660, 1720, 2410), 220, True, 2.0),
        _p("AA", "vowel", (750, 1230, 2520), 230, True, 2.5),
        _p("AO", "vowel", (640, 1000, 2540), 230, True, 2.0),
        _p("OW", "diph", (500, 1000, 2460), 210, True, 1.0, f_end=(400, 850, 2400)),
        _p("UH", "vowel", (470, 1120, 2430), 160, True, 0.0),
        _p("UW", "vowel", (380, 1000, 2340), 200, True, -1.5),
        _p("AH", "vowel", (620, 1220, 2550), 140, True, 1.5),
        _p("AX", "vowel", (500, 1450, 2500), 100, True, -1.0),
        _p("ER", "vowel", (470, 1380, 1700), 180, True, 0.0),
        _p("AY", "diph", (740, 1300, 2500), 250, True, 2.0, f_end=(420, 2000, 2650)),
        _p("AW", "diph", (740, 1270, 2500), 250, True, 2.0, f_end=(480, 950, 2400)),
        _p("OY", "diph", (560, 900, 2450), 270, True, 1.5, f_end=(420, 1950, 2600)),
        # stops: f = locus; closure + burst (+ aspiration when voiceless)
        _p("P", "stop", (300, 900, 2200), 90, False, noise="lab", an_db=-12, place="lab"),
        _p("B", "stop", (250, 850, 2200), 80, True, -24, noise="lab", an_db=-20, place="lab"),
        _p("T", "stop", (350, 1750, 2700), 80, False, noise="alv", an_db=-8, place="alv"),
        _p("D", "stop", (250, 1700, 2650), 70, True, -24, noise="alv", an_db=-16, place="alv"),
        _p("K", "stop", (350, 1900, 2500), 85, False, noise="vel", an_db=-9, place="vel"),
        _p("G", "stop", (250, 1850, 2450), 75, True, -24, noise="vel", an_db=-17, place="vel"),
        _p("DX", "stop", (350, 1650, 2650), 25, True, -10, place="alv"),  # flap
        # fricatives
        _p("S", "fric", (320, 1750, 2700), 110, False, noise="s", an_db=-4),
        _p("Z", "fric", (280, 1700, 2650), 80, True, -16, noise="s", an_db=-10),
        _p("SH", "fric", (320, 1850, 2450), 115, False, noise="sh", an_db=-10),
        _p("ZH", "fric", (280, 1800, 2400), 85, True, -16, noise="sh", an_db=-13),
        _p("F", "fric", (320, 950, 2250), 100, False, noise="f", an_db=-22),
        _p("V", "fric", (280, 950, 2250), 65, True, -12, noise="f", an_db=-26),
        _p("TH", "fric", (320, 1400, 2600), 95, False, noise="f", an_db=-24),
        _p("DH", "fric", (280, 1400, 2550), 50, True, -12, noise="f", an_db=-27),
        _p("HH", "aspirate", (500, 1500, 2500), 70, False, noise="asp", an_db=-14),
        _p("CH", "affr", (320, 1850, 2450), 90, False, noise="sh", an_db=-12, place="alv"),
        _p("JH", "affr", (280, 1800, 2400), 75, True, -18, noise="sh", an_db=-15, place="alv"),
        # sonorants
        _p("M", "nasal", (280, 1000, 2200), 75, True, -19, place="lab"),
        _p("N", "nasal", (280, 1600, 2600), 65, True, -19, place="alv"),
        _p("NG", "nasal", (280, 2000, 2600), 90, True, -20, place="vel"),
        _p("L", "liquid", (360, 1000, 2700), 75, True, -12),
        _p("R", "liquid", (400, 1150, 1600), 75, True, -11),
        _p("W", "glide", (300, 700, 2250), 70, True, -12),
        _p("Y", "glide", (280, 2200, 3000), 65, True, -11),
    ]
}

VOWELS = frozenset(n for n, p in PHONES.items() if p.kind in ("vowel", "diph"))

# Pronunciations; stress digits on vowels (1 primary, 2 secondary, 0 none). Hand-written for the
# words the scenes use; anything else goes through letters_to_phones().
_LEXICON_TEXT = """
a AX0
about AX0 B AW1 T
account AX0 K AW1 N T
after AE1 F T ER0
again AX0 G EH1 N
agents EY1 JH AX0 N T S
all AO1 L
am AE1 M
an AE1 N
and AE1 N D
anna AE1 N AX0
answer AE1 N S ER0
any EH1 N IY0
anyone EH1 N IY0 W AH2 N
are AA1 R
as AE1 Z
at AE1 T
auto AO1 T OW0
automatic AO2 T AX0 M AE1 DX IH0 K
available AX0 V EY1 L AX0 B AX0 L
back B AE1 K
bakery B EY1 K ER0 IY0
be B IY1
beep B IY1 P
been B IH1 N
blue B L UW1
box B AA1 K S
busy B IH1 Z IY0
but B AH1 T
bye B AY1
call K AO1 L
called K AO1 L D
calling K AO1 L IH0 NG
can K AE1 N
cannot K AE1 N AA2 T
cant K AE1 N T
check CH EH1 K
chris K R IH1 S
city S IH1 DX IY0
come K AH1 M
completed K AX0 M P L IY1 T IH0 D
connect K AX0 N EH1 K T
continue K AX0 N T IH1 N Y UW0
could K UH1 D
customer K AH1 S T AX0 M ER0
daniel D AE1 N Y AX0 L
david D EY1 V IH0 D
delivery D IH0 L IH1 V ER0 IY0
dental D EH1 N T AX0 L
desk D EH1 S K
dial D AY1 AX0 L
dialed D AY1 AX0 L D
direct D ER0 EH1 K T
disconnected D IH2 S K AX0 N EH1 K T IH0 D
do D UW1
doctor D AA1 K T ER0
done D AH1 N
dont D OW1 N T
eight EY1 T
evening IY1 V N IH0 NG
finished F IH1 N IH0 SH T
five F AY1 V
for F AO1 R
forwarded F AO1 R W ER0 D IH0 D
four F AO1 R
from F R AH1 M
front F R AH1 N T
full F UH1 L
get G EH1 T
goodbye G UH2 D B AY1
good G UH1 D
got G AA1 T
ha HH AA1
hang HH AE1 NG
has HH AE1 Z
have HH AE1 V
hear HH IY1 R
hello HH AX0 L OW1
help HH EH1 L P
here HH IY1 R
hey HH EY1
hi HH AY1
hold HH OW1 L D
how HH AW1
i AY1
ill AY1 L
im AY1 M
important IH0 M P AO1 R T AX0 N T
in IH1 N
instead IH0 N S T EH1 D
is IH1 Z
it IH1 T
its IH1 T S
jenny JH EH1 N IY0
just JH AH1 S T
kidding K IH1 DX IH0 NG
know N OW1
later L EY1 T ER0
leave L IY1 V
library L AY1 B R EH2 R IY0
line L AY1 N
lisa L IY1 S AX0
mail M EY1 L
mailbox M EY1 L B AA2 K S
main M EY1 N
maria M AX0 R IY1 AX0
may M EY1
me M IY1
message M EH1 S IH0 JH
messages M EH1 S IH0 JH IH0 Z
millers M IH1 L ER0 Z
missed M IH1 S T
moment M OW1 M AX0 N T
more M AO1 R
morning M AO1 R N IH0 NG
my M AY1
name N EY1 M
new N UW1
nine N AY1 N
not N AA1 T
now N AW1
number N AH1 M B ER0
of AH1 V
office AO1 F IH0 S
oh OW1
okay OW2 K EY1
on AA1 N
one W AH1 N
options AA1 P SH AX0 N Z
or AO1 R
our AW1 ER0
parker P AA1 R K ER0
person P ER1 S AX0 N
pharmacy F AA1 R M AX0 S IY0
phone F OW1 N
pickup P IH1 K AH2 P
pizza P IY1 T S AX0
please P L IY1 Z
plumbing P L AH1 M IH0 NG
pound P AW1 N D
press P R EH1 S
reached R IY1 CH T
record R IH0 K AO1 R D
recording R IH0 K AO1 R D IH0 NG
reference R EH1 F R AX0 N S
repair R IH0 P EH1 R
residence R EH1 Z IH0 D AX0 N S
right R AY1 T
river R IH1 V ER0
sam S AE1 M
send S EH1 N D
service S ER1 V IH0 S
set S EH1 T
seven S EH1 V AX0 N
side S AY1 D
six S IH1 K S
smith S M IH1 TH
so S OW1
sons S AH1 N Z
soon S UW1 N
sorry S AA1 R IY0
speak S P IY1 K
speaking S P IY1 K IH0 NG
stay S T EY1
street S T R IY1 T
subscriber S AX0 B S K R AY1 B ER0
sunrise S AH1 N R AY2 Z
system S IH1 S T AX0 M
take T EY1 K
talk T AO1 K
text T EH1 K S T
thank TH AE1 NG K
thanks TH AE1 NG K S
that DH AE1 T
the DH AX0
there DH EH1 R
theres DH EH1 R Z
this DH IH1 S
three TH R IY1
time T AY1 M
to T UW0
tom T AA1 M
tone T OW1 N
try T R AY1
two T UW1
up AH1 P
us AH1 S
voice V OY1 S
voicemail V OY1 S M EY2 L
want W AA1 N T
was W AA1 Z
we W IY1
well W EH1 L
were W ER1
west W EH1 S T
what W AH1 T
when W EH1 N
while W AY1 L
who HH UW1
whos HH UW1 Z
will W IH1 L
with W IH1 DH
yeah Y AE1
yes Y EH1 S
you Y UW1
your Y AO1 R
youve Y UW1 V
youre Y UH1 R
zero Z IY1 R OW0
uh AH1
um AH1 M
accept AE0 K S EH1 P T
accepting AE0 K S EH1 P T IH0 NG
afternoon AE2 F T ER0 N UW1 N
agent EY1 JH AX0 N T
arrive ER0 AY1 V
away AX0 W EY1
before B IH0 F AO1 R
broken B R OW1 K AX0 N
by B AY1
callback K AO1 L B AE2 K
car K AA1 R
circuits S ER1 K AX0 T S
coffee K AO1 F IY0
denver D EH1 N V ER0
did D IH1 D
digits D IH1 JH AX0 T S
folder F OW1 L D ER0
friday F R AY1 D EY2
further F ER1 DH ER0
game G EY1 M
him HH IH1 M
honestly AA1 N AX0 S T L IY0
hums HH AH1 M Z
idea AY0 D IY1 AX0
information IH2 N F ER0 M EY1 SH AX0 N
job JH AA1 B
last L AE1 S T
left L EH1 F T
limited L IH1 M AX0 T IH0 D
lunch L AH1 N CH
machine M AX0 SH IY1 N
meeting M IY1 DX IH0 NG
minutes M IH1 N AX0 T S
month M AH1 N TH
moved M UW1 V D
moving M UW1 V IH0 NG
need N IY1 D
next N EH1 K S T
night N AY1 T
no N OW1
nobody N OW1 B AA2 DX IY0
order AO1 R D ER0
overtime OW1 V ER0 T AY2 M
package P AE1 K IH0 JH
paper P EY1 P ER0
parked P AA1 R K T
pass P AE1 S
printer P R IH1 N T ER0
said S EH1 D
see S IY1
she SH IY1
should SH UH1 D
sister S IH1 S T ER0
sometime S AH1 M T AY2 M
stops S T AA1 P S
table T EY1 B AX0 L
terrible T EH1 R AX0 B AX0 L
they DH EY1
think TH IH1 NG K
thirty TH ER1 DX IY0
told T OW1 L D
traffic T R AE1 F IH0 K
waiting W EY1 DX IH0 NG
wants W AA1 N T S
went W EH1 N T
whats W AH1 T S
where W EH1 R
wireless W AY1 R L AX0 S
would W UH1 D
yet Y EH1 T
"""

LEXICON: dict[str, list[str]] = {}
for _line in _LEXICON_TEXT.strip().splitlines():
    _w, *_ph = _line.split()
    LEXICON[_w] = _ph

# Function words: said quickly and without a pitch accent.
FUNCTION_WORDS = frozenset(
    ["a", "an", "the", "to", "of", "for", "and", "or", "at", "in", "on", "is", "are", "was", "be", "been", "it", "its",
     "i", "im", "ill", "you", "your", "youve", "youre", "we", "were", "me", "my", "us", "our", "this", "that", "with",
     "as", "but", "so", "can", "has", "have", "will", "may", "do", "from", "by", "no", "she", "they", "would",
     "should", "did"]
)

_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

# Letter-to-sound fallback: ordered rules, longest first. Crude, but English-shaped.
_LTS_RULES: list[tuple[str, list[str]]] = [
    ("tion", ["SH", "AX0", "N"]), ("igh", ["AY1"]), ("ough", ["AO1"]), ("eau", ["OW1"]),
    ("ch", ["CH"]), ("sh", ["SH"]), ("th", ["TH"]), ("ph", ["F"]), ("ng", ["NG"]), ("ck", ["K"]),
    ("qu", ["K", "W"]), ("wh", ["W"]), ("kn", ["N"]), ("ee", ["IY1"]), ("ea", ["IY1"]),
    ("oo", ["UW1"]), ("ou", ["AW1"]), ("ow", ["OW1"]), ("ai", ["EY1"]), ("ay", ["EY1"]),
    ("oi", ["OY1"]), ("oy", ["OY1"]), ("au", ["AO1"]), ("aw", ["AO1"]), ("ie", ["IY1"]),
    ("er", ["ER1"]), ("ir", ["ER1"]), ("ur", ["ER1"]), ("ar", ["AA1", "R"]), ("or", ["AO1", "R"]),
    ("a", ["AE1"]), ("e", ["EH1"]), ("i", ["IH1"]), ("o", ["AA1"]), ("u", ["AH1"]),
    ("y", ["IY1"]), ("b", ["B"]), ("c", ["K"]), ("d", ["D"]), ("f", ["F"]), ("g", ["G"]),
    ("h", ["HH"]), ("j", ["JH"]), ("k", ["K"]), ("l", ["L"]), ("m", ["M"]), ("n", ["N"]),
    ("p", ["P"]), ("q", ["K"]), ("r", ["R"]), ("s", ["S"]), ("t", ["T"]), ("v", ["V"]),
    ("w", ["W"]), ("x", ["K", "S"]), ("z", ["Z"]),
]


def letters_to_phones(word: str) -> list[str]:
    """Spell a word the English way, roughly: first vowel stressed, the others reduced."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if not w:
        return []
    if len(w) > 3 and w.endswith("e") and w[-2] not in "aeiouy":
        w = w[:-1]  # silent final e
    out: list[str] = []
    i = 0
    while i < len(w):
        for pat, ph in _LTS_RULES:
            if w.startswith(pat, i):
                if pat == "y" and i == 0:
                    ph = ["Y"]
                out.extend(ph)
                i += len(pat)
                break
    # doubled consonants are one phone
    dedup: list[str] = []
    for p in out:
        if dedup and p == dedup[-1] and p[-1] not in "012":
            continue
        dedup.append(p)
    seen_stress = False
    result = []
    for p in dedup:
        if p[-1] in "012":
            if seen_stress:
                base = p[:-1]
                p = ("AX" if base in ("AE", "EH", "AH", "AA", "IH") else base) + "0"
            seen_stress = True
        result.append(p)
    if not seen_stress:
        result.append("AX1")
    return result


def pronounce(word: str) -> list[str]:
    """Phones with stress digits for one word (digits are read out)."""
    w = word.lower().replace("'", "")
    if w.isdigit():
        out: list[str] = []
        for d in w:
            out.extend(LEXICON[_DIGITS[int(d)]])
        return out
    if w in LEXICON:
        return list(LEXICON[w])
    return letters_to_phones(w)


@dataclass
class Word:
    text: str
    phones: list[str]  # with stress digits on vowels
    function: bool
    pause_after: str  # "", ",", ".", "?", "!"


def parse(text: str) -> list[list[Word]]:
    """Text -> sentences (split at . ? !) of words; commas become short pauses.

    Digits are read one by one, as carrier prompts do ("5 5 5 1 2 3 4").
    """
    tokens = re.findall(r"[A-Za-z']+|\d|[.,?!;:]", text)
    sentences: list[list[Word]] = [[]]
    for tok in tokens:
        if tok in ".?!":
            if sentences[-1]:
                sentences[-1][-1].pause_after = tok
                sentences.append([])
        elif tok in ",;:":
            if sentences[-1]:
                sentences[-1][-1].pause_after = ","
        else:
            key = tok.lower().replace("'", "")
            ph = pronounce(tok)
            if ph:
                sentences[-1].append(Word(tok, ph, key in FUNCTION_WORDS, ""))
    return [s for s in sentences if s]
