"""The synthetic world and suite: premises the suite's tasks rely on."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest

from vlprompt.data.synthetic import world
from vlprompt.data.synthetic.suite import TASKS


def _word_ids(tokenizer, word: str) -> set[int]:
    """BPE ids of a word as it appears mid-sentence (no start/end tokens)."""
    return set(tokenizer.encode(word))


#: attribute -> (its unseen words, its caption words, the task named with both)
VOCABULARIES = {
    "colors": (world.UNSEEN_COLOR_WORDS, {c: (c, *ws) for c, ws in world.COLOR_SYNONYMS.items()}, "rare_names"),
    "fills": (world.UNSEEN_FILL_WORDS, world.FILL_WORDS, "textures"),
}


@pytest.fixture(scope="module")
def caption_ids() -> tuple[object, set[int]]:
    """Token ids of 3000 pretraining captions, with the tiny CLIP's tokenizer (ViT-B-32's BPE)."""
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    rng = np.random.default_rng(0)
    seen: set[int] = set()
    for _ in range(3000):
        seen.update(tokenizer.encode(world.caption(world.sample_scene(rng), rng)))
    return tokenizer, seen


@pytest.mark.parametrize("vocabulary", list(VOCABULARIES))
def test_unseen_words_never_reach_pretraining_captions(caption_ids, vocabulary):
    # No token of an unseen word may occur in a caption, else the tasks' unseen class names
    # would not be unseen.
    tokenizer, seen = caption_ids
    unseen, known, _ = VOCABULARIES[vocabulary]
    known_ids = {i for words in known.values() for w in words for i in _word_ids(tokenizer, w)}
    assert known_ids & seen, "the sample is too small to show even the caption words"
    for value, word in unseen.items():
        leaked = _word_ids(tokenizer, word) & seen
        assert not leaked, f"{word!r} ({value}): tokens {sorted(leaked)} occur in pretraining captions"


@pytest.mark.parametrize("vocabulary", list(VOCABULARIES))
def test_unseen_words_are_new_words(vocabulary):
    unseen, known, _ = VOCABULARIES[vocabulary]
    assert set(unseen) == set(known)
    assert not set(unseen.values()) & {w for ws in known.values() for w in ws}
    assert len(set(unseen.values())) == len(unseen)


@pytest.mark.parametrize("vocabulary", list(VOCABULARIES))
def test_tasks_mix_unseen_and_rare_words(vocabulary):
    unseen, known, task = VOCABULARIES[vocabulary]
    names = TASKS[task].classnames
    assert len(names) == len(unseen) == len(set(names))
    assert sum(n in set(unseen.values()) for n in names) == (len(names) + 1) // 2
    assert all(n in set(unseen.values()) or n in {w for ws in known.values() for w in ws} for n in names)
