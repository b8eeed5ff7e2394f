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


# ---------------------------------------------------------------- the world itself

def test_world_is_a_pure_function_of_the_seed():
    scenes = [world.sample_scene(np.random.default_rng(7)) for _ in range(2)]
    assert scenes[0] == scenes[1]
    a, b = (np.asarray(world.render(s)) for s in scenes)
    assert a.shape == (world.IMAGE_SIZE, world.IMAGE_SIZE, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    other = world.sample_scene(np.random.default_rng(8))
    assert not np.array_equal(a, np.asarray(world.render(other)))
    c1, c2 = (world.caption(scenes[0], np.random.default_rng(3)) for _ in range(2))
    assert c1 == c2


def test_pinned_attributes_and_excluded_pairs_are_respected():
    rng = np.random.default_rng(0)
    banned = world.held_out_combos()
    assert len(banned) == len(world.SHAPES)  # one colour per shape
    for _ in range(300):
        s = world.sample_scene(rng, exclude=banned, fill="dotted")
        assert (s.shape, s.color) not in banned and s.fill == "dotted"
        assert s.count == 1 or s.position == "center"


def test_captions_name_the_scene_and_never_another_value():
    """Any shape or colour word in a caption is the scene's own (or a synonym of it), apart
    from the background's name."""
    rng = np.random.default_rng(1)
    mentions = {"shape": 0, "color": 0}
    for _ in range(400):
        s = world.sample_scene(rng)
        text = world.caption(s, rng).replace(s.background, "")  # "light blue", "dark green" backgrounds
        words = set(text.replace(".", " ").replace(",", " ").split())
        for shape in world.SHAPES:
            named = shape in words or world.SHAPE_PLURALS[shape] in words
            assert not named or shape == s.shape, (s, words)
            mentions["shape"] += named
        for color, synonyms in world.COLOR_SYNONYMS.items():
            named = bool(words & {color, *synonyms})
            assert not named or color == s.color, (s, words)
            mentions["color"] += named
    assert min(mentions.values()) > 100  # both attributes are described often


def test_shifted_domains_change_the_pixels_not_the_scene():
    rng = np.random.default_rng(2)
    scene = world.sample_scene(rng, count=1, fill="solid")
    clean = np.asarray(world.render(scene)).astype(int)
    sketch = np.asarray(world.render(world.with_domain(scene, "sketch", rng))).astype(int)
    assert np.array_equal(sketch[..., 0], sketch[..., 1]) and np.array_equal(sketch[..., 1], sketch[..., 2])
    inverted = np.asarray(world.render(world.with_domain(scene, "inverted", rng))).astype(int)
    assert np.abs((255 - inverted) - clean).mean() < 8  # the clean image, inverted (up to its pixel noise)
    newbg = world.with_domain(scene, "new_background", rng)
    assert newbg.background in world.NOVEL_BACKGROUNDS and newbg.shape == scene.shape
    with pytest.raises(ValueError, match="unknown domain"):
        world.with_domain(scene, "underwater", rng)


def test_suite_tasks_are_registered_and_deterministic(tmp_path, monkeypatch):
    from vlprompt.data import list_datasets, load_dataset
    from vlprompt.data.synthetic import suite

    names = [f"synthetic:{t}" for t in TASKS]
    assert set(names) <= set(list_datasets())
    shape_tasks = [t for t in TASKS if "shape" in t and "color" not in t]
    assert "shapes" in shape_tasks
    assert [t for t in TASKS if TASKS[t].test_only] == ["shapes_noise", "shapes_sketch", "shapes_newbg",
                                                         "shapes_inverted"]
    # the held-out task asks exactly for the pairs pretraining never shows
    held = {f"{c} {s}" for s, c in world.held_out_combos()}
    assert set(TASKS["heldout_combos"].classnames) == held
    # which scene lands in which split depends on the task's seed alone
    first = suite._plan("counting", TASKS["counting"])
    assert first == suite._plan("counting", TASKS["counting"])
    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path))
    data = load_dataset("synthetic:counting")
    assert data.classnames == list(world.COUNT_WORDS) and len(data.templates) == 1
    assert [len(data.train), len(data.val), len(data.test)] == [4 * n for n in TASKS["counting"].per_class]
    paths = [it.path for it in data.train + data.val + data.test]
    assert len(set(paths)) == len(paths) and all(str(p).startswith(str(tmp_path)) for p in paths)
    again = load_dataset("synthetic:counting")
    assert [(it.path, it.label) for it in again.test] == [(it.path, it.label) for it in data.test]
    shifted = suite._plan("shapes_sketch", TASKS["shapes_sketch"])
    assert not shifted["train"] and {sc.domain for sc, _ in shifted["test"]} == {"sketch"}
