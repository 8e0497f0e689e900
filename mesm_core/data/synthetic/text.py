"""Transcripts for the synthetic dataset: templated sentences, only some of which name the emotion.

A clip whose text cue is present gets a sentence containing an emotion word of (one of) its
classes ("I am so furious about the meeting"); otherwise a neutral sentence from the same topic
pool ("We talked about the schedule today"), so the text alone is informative but not sufficient.
"""

from __future__ import annotations

import numpy as np

EMOTION_WORDS: dict[str, tuple[str, ...]] = {
    "anger": ("furious", "angry", "mad", "outraged", "livid", "irritated"),
    "disgust": ("disgusted", "grossed out", "repulsed", "sickened", "revolted", "nauseated"),
    "fear": ("scared", "afraid", "terrified", "frightened", "anxious", "panicked"),
    "happy": ("happy", "delighted", "thrilled", "glad", "overjoyed", "cheerful"),
    "sad": ("sad", "heartbroken", "miserable", "depressed", "gloomy", "upset"),
    "surprise": ("surprised", "amazed", "astonished", "stunned", "startled", "speechless"),
}

TOPICS = (
    "meeting", "schedule", "report", "train ride", "weather forecast", "new phone", "exam results",
    "package", "dinner plans", "budget", "email from my boss", "neighbours", "interview", "test drive",
    "garden", "project", "flight", "phone bill", "recipe", "game last night", "doctor's visit",
    "apartment", "news", "concert", "team", "delivery", "lecture", "holiday photos",
)

EMOTION_TEMPLATES = (
    "I am so {w} about the {topic}.",
    "Honestly I felt {w} when I saw the {topic}.",
    "The {topic} left me {w}.",
    "We were all {w} after the {topic}.",
    "I'm really {w} about the {topic} right now.",
    "You could tell she was {w} about the {topic}.",
    "That {topic} made me feel {w}.",
    "I got {w} the moment they mentioned the {topic}.",
    "To be honest the {topic} has me {w}.",
    "He sounded {w} when he called about the {topic}.",
)

TWO_EMOTION_TEMPLATES = (
    "I was {w} and a bit {w2} about the {topic}.",
    "The {topic} left me {w}, even {w2}.",
    "First I felt {w} about the {topic}, then {w2}.",
)

NEUTRAL_TEMPLATES = (
    "We talked about the {topic} today.",
    "The {topic} is on the list for tomorrow.",
    "I read the notes on the {topic} yesterday.",
    "She asked me about the {topic} after lunch.",
    "They moved the {topic} to next week.",
    "Let me tell you about the {topic}.",
    "So this is what happened with the {topic}.",
    "I need to check the {topic} again later.",
    "He mentioned the {topic} on the way home.",
    "We will look at the {topic} on Monday.",
)


def make_transcript(rng: np.random.Generator, labels: list[str], cue_present: bool) -> tuple[str, list[str]]:
    """Return (sentence, emotion words used). ``labels``: the clip's classes (1 or 2)."""
    topic = TOPICS[int(rng.integers(len(TOPICS)))]
    if not cue_present:
        template = NEUTRAL_TEMPLATES[int(rng.integers(len(NEUTRAL_TEMPLATES)))]
        return template.format(topic=topic), []
    words = [EMOTION_WORDS[c][int(rng.integers(len(EMOTION_WORDS[c])))] for c in labels]
    if len(words) == 2 and rng.random() < 0.7:
        template = TWO_EMOTION_TEMPLATES[int(rng.integers(len(TWO_EMOTION_TEMPLATES)))]
        return template.format(w=words[0], w2=words[1], topic=topic), words
    # One word only (for two-label clips the text then names just one of them).
    template = EMOTION_TEMPLATES[int(rng.integers(len(EMOTION_TEMPLATES)))]
    return template.format(w=words[0], topic=topic), words[:1]
