"""What the synthetic people and machines say. Our own wording; the point is the length and
rhythm of each kind of answer, not the words."""

from __future__ import annotations

import numpy as np

HELLO = [  # one to three syllables: most people
    "Hello?", "Hello.", "Yeah?", "Hi.", "Yes?", "Hey.", "Speaking.", "Uh, hello?", "Yeah, hello?",
    "Hi there.", "Yes, hello?", "Who is it?", "Okay, hello?", "Good evening.", "Hey, what's up?",
]
HELLO_LONG = [  # a few say more (up to ~2.3 s)
    "Hello, who's this?", "Hi, who's calling?", "Hello, Smith residence.", "Hello, this is Tom.",
    "Hello? Who is this, please?", "Yeah, hi, who's calling?",
]
HELLO_AGAIN = ["Hello?", "Hello? Anyone there?", "Hello, can you hear me?", "Hello? Hello?", "Who is this?"]

HELLO_SLOW = [  # first words that run a second or more (field failures: cut short or called machine)
    "Hello, Garcia house.", "One moment, please.", "Yes hello, who am I speaking with?",
    "Hello, Martin residence, who's this?", "Yeah, hello, who is calling please?",
]
HELLO_PERSONAL_LONG = [  # long personal hellos, 2.5-4 s, spoken live
    "Hello, this is Theresa Walsh speaking, can I ask who's calling?",
    "Hi, you've got Robert Delgado here, who am I talking to?",
    "Hello, Margaret Olsen speaking, may I ask what this is about?",
    "Good evening, this is Kevin Park, who's calling please?",
]
ATTENDANT = [  # a person (or a front desk) handing the call on, before ringback
    "Please hold while I connect you.", "One moment, I'll put you through.",
    "Let me transfer you, please hold.", "Sure, hold on, I'll connect you now.",
]

BUSINESS = [
    "Thanks for calling Blue River Dental, this is Jenny, how can I help you?",
    "Good afternoon, Parker and Sons Plumbing, how may I help you?",
    "Front office, this is David speaking, what can I do for you?",
    "Hi, thank you for calling Sunrise Bakery, what can I get for you?",
    "City library, reference desk, how can I help?",
    "Good morning, West Side Auto Repair, this is Tom, how can I help?",
    "Hello, Main Street Pharmacy, can you hold for a moment?",
    "Customer service, my name is Lisa, may I have your account number?",
    "Thank you for calling, this is Anna, how may I direct your call?",
]

PERSONAL = [
    "Hi, you've reached Sam. I can't take your call right now, leave a message.",
    "Hey, it's Maria, sorry I missed you, leave your name and number.",
    "You have reached the phone of Daniel. Please leave a message.",
    "Hi, this is Chris. I'm not available, so leave a message after the tone.",
    "Hello, you've reached the Millers. We'll call you back.",
    "This is Anna, leave me a message and I'll get back to you.",
    "Hi, it's Jenny. Leave a message.",
    "You've reached David, I can't come to the phone, leave a message after the beep.",
]

CARRIER_CORE = [
    "The person you are calling is not available. Please leave a message after the tone.",
    "You have reached the voice mailbox of {digits}. The subscriber is not available. "
    "Please record your message after the tone.",
    "The number you have called, {digits}, is not available right now. At the tone, please record "
    "your message.",
    "Your call has been forwarded to an automatic voice message system. {digits} is not available. "
    "At the tone, please record your message.",
    "The customer you are calling is not available. Please leave a message after the tone, "
    "or press pound for more options.",
    "The wireless customer you have dialed is away from the phone. Please leave a message at the tone.",
]
CARRIER_EXTRA = [
    "When you are finished, you may hang up, or press pound for more options.",
    "When you are done, hang up.",
    "To leave a callback number, press five.",
    "Messages are limited to three minutes.",
    "When you are finished recording, you may hang up.",
    "For more options, stay on the line.",
]


def carrier(rng: np.random.Generator) -> str:
    """A carrier/system greeting: one core prompt and zero to two extra sentences."""
    core = pick(rng, CARRIER_CORE).format(digits=digits(rng))
    extras = [CARRIER_EXTRA[i] for i in rng.permutation(len(CARRIER_EXTRA))[: int(rng.integers(0, 3))]]
    return " ".join([core] + extras)


SHORT = [
    "Leave a message.", "Not here, leave a message.", "Talk after the beep.", "You know what to do.",
    "Speak after the tone.", "Message please.", "Leave it at the beep.", "Sam. Leave a message.",
]
SHORT_SECOND = ["Thanks.", "Bye.", "Thank you.", "Later.", "Bye now."]

NO_BEEP_SILENCE = [
    "The mailbox is full and cannot accept new messages. Goodbye.",
    "The voicemail box has not been set up yet. Goodbye.",
    "Sorry, this mailbox is not accepting messages at this time.",
    "Hi, I don't check voicemail, please send me a text instead.",
    "The person you are calling cannot accept messages right now. Please try again later.",
]
NO_BEEP_MUSIC = [
    "Please hold while we connect your call.",
    "All of our agents are busy, please stay on the line.",
    "Your call is important to us, please continue to hold.",
    "Thank you for calling. Please hold for the next available agent.",
]

MULTI_GAP = [
    ["Hello?", "Hi!", "Hey there.", "Yeah, hello?", "Hello."],
    ["Ha, got you, I'm not here right now.", "Sorry, I can't come to the phone.",
     "Just kidding, this is a recording.", "You have reached Maria and Tom."],
    ["Leave a message.", "Leave your name and number.", "Talk to you soon, leave a message after the beep.",
     "Please leave a message after the tone."],
    ["Bye now.", "Thanks!", "We'll call you back."],
]

SIT_MESSAGE = [
    "We're sorry, the number you have dialed is not in service. Please check the number and dial again.",
    "Your call cannot be completed as dialed. Please check the number and try again.",
    "The number you have reached has been disconnected. No further information is available.",
    "All circuits are busy now. Please try your call again later.",
]


def digits(rng: np.random.Generator) -> str:
    """A phone number read out with pauses: '5 5 5, 2 1 3, 4 8 0 7'."""
    d = [str(int(x)) for x in rng.integers(0, 10, 10 if rng.random() < 0.4 else 7)]
    groups = [d[:3], d[3:6], d[6:]] if len(d) == 10 else [d[:3], d[3:]]
    return ", ".join(" ".join(g) for g in groups)


def pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]
