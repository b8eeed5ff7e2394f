"""The synthetic world and suite: premises the suite's tasks rely on."""

from __future__ import annotations

import numpy as np
import open_clip

from vlprompt.data.synthetic import world
from vlprompt.data.synthetic.suite import TASKS


def _word_ids(tokenizer, word: str) -> set[int]:
    """BPE ids of a word as it appears mid-sentence (no start/end tokens)."""
    return set(tokenizer.encode(word))


def test_unseen_color_words_never_reach_pretraining_captions():
    # The tiny CLIP uses open_clip's CLIP BPE tokenizer (load_backbone takes ViT-B-32's), and its
    # captions are world.caption of world.sample_scene: no token of an unseen word may occur
    # there, else rare_names' unseen class names would not be unseen.
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    rng = np.random.default_rng(0)
    seen: set[int] = set()
    for _ in range(3000):
        seen.update(tokenizer.encode(world.caption(world.sample_scene(rng), rng)))
    synonym_ids = {i for words in world.COLOR_SYNONYMS.values() for w in words for i in _word_ids(tokenizer, w)}
    assert synonym_ids & seen, "the sample is too small to show even the rare synonyms"
    for color, word in world.UNSEEN_COLOR_WORDS.items():
        leaked = _word_ids(tokenizer, word) & seen
        assert not leaked, f"{word!r} ({color}): tokens {sorted(leaked)} occur in pretraining captions"


def test_unseen_color_words_are_new_words():
    known = set(world.COLORS) | {w for ws in world.COLOR_SYNONYMS.values() for w in ws}
    assert set(world.UNSEEN_COLOR_WORDS) == set(world.COLORS)
    assert not set(world.UNSEEN_COLOR_WORDS.values()) & known
    assert len(set(world.UNSEEN_COLOR_WORDS.values())) == len(world.COLORS)


def test_rare_names_mixes_unseen_and_rare_words():
    names = TASKS["rare_names"].classnames
    unseen = set(world.UNSEEN_COLOR_WORDS.values())
    rare = {ws[0] for ws in world.COLOR_SYNONYMS.values()}
    assert len(names) == len(world.COLORS) == len(set(names))
    assert sum(n in unseen for n in names) == len(names) // 2
    assert all(n in unseen or n in rare for n in names)
