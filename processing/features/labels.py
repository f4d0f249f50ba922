"""
Readable tags for the 1000 ImageNet classes the model scores.

``imagenet_classes.tsv`` lists the classes in the model's output order (WordNet
id, then WordNet's names for it, as timm ships them). Many of those names
mislead as tags: 118 of the classes are dog breeds, so an ordinary dog comes
out as "Mexican hairless" or "Walker hound"; "tabby" and "tiger cat" are
house cats; "maillot" is a swimsuit, "nipple" a baby bottle's teat, "sorrel"
a horse, "crane" both a bird and a machine. So each class gets a tag: a
coarse, everyday word for the fine-grained animal groups (dog, cat, bird,
fish, snake, monkey, ...) and for the names above, and the class's first
WordNet name otherwise ("espresso", "mountain bike", "lighthouse").
``top_tags`` adds the probabilities of the classes that share a tag, so a cat
photo reads "cat 0.92" rather than three breeds at 0.3 each.

What the model cannot tell: ImageNet-1k has no class for a person, a face, a
man, a woman or a child; a portrait is labelled by what the person wears or
holds ("suit", "jersey", "academic gown", "microphone"). Nor does it know
text, screenshots (other than "web site"), drawings, or places beyond a few
landscapes. docs/recognition.md says so for users.
"""
import os

import numpy as np

CLASSES_FILE = os.path.join(os.path.dirname(__file__), "imagenet_classes.tsv")

# Class index ranges (inclusive) that share one everyday tag.
GROUPS = (
    ((0, 6), "fish"), ((389, 397), "fish"),
    ((7, 24), "bird"), ((80, 100), "bird"), ((127, 146), "bird"),
    ((25, 32), "amphibian"), ((33, 37), "turtle"), ((38, 48), "lizard"), ((49, 50), "crocodile"),
    ((51, 51), "dinosaur"), ((52, 68), "snake"), ((72, 77), "spider"),
    ((101, 101), "elephant"), ((385, 386), "elephant"),
    ((118, 121), "crab"), ((125, 125), "crab"), ((122, 124), "lobster"),
    ((147, 148), "whale"), ((151, 268), "dog"), ((269, 271), "wolf"), ((272, 275), "wild dog"),
    ((277, 280), "fox"), ((281, 285), "cat"), ((294, 297), "bear"), ((300, 307), "beetle"),
    ((311, 312), "grasshopper"), ((319, 320), "dragonfly"), ((321, 326), "butterfly"),
    ((330, 332), "rabbit"), ((341, 343), "pig"), ((345, 347), "cattle"), ((348, 349), "sheep"),
    ((351, 353), "antelope"), ((365, 369), "ape"), ((370, 382), "monkey"), ((383, 384), "lemur"),
)

# Single classes whose first WordNet name misleads or is obscure.
RENAMED = {
    104: "kangaroo", 134: "bird", 339: "horse", 350: "goat", 354: "camel",
    412: "trash can", 413: "rifle", 445: "swimsuit", 459: "bra", 468: "taxi", 480: "ATM",
    487: "mobile phone", 489: "fence", 517: "crane (machine)", 608: "jeans", 610: "T-shirt",
    638: "swimsuit", 639: "swimsuit", 652: "uniform", 664: "screen", 680: "baby bottle",
    697: "pajamas", 716: "fence", 744: "missile", 776: "saxophone", 782: "screen",
    836: "sunglasses", 837: "sunglasses", 842: "swimsuit", 885: "fabric", 912: "fence",
    916: "web page", 921: "book cover", 948: "apple", 970: "mountain", 975: "lake",
    976: "coast", 977: "beach", 978: "beach", 981: "baseball player", 998: "ear of grain",
    999: "toilet paper",
}


def _load():
    names = []
    with open(CLASSES_FILE, encoding="utf-8") as handle:
        for line in handle:
            _wnid, lemmas = line.rstrip("\n").split("\t", 1)
            names.append(lemmas.split(", ")[0])
    tags = list(names)
    for (first, last), tag in GROUPS:
        for index in range(first, last + 1):
            tags[index] = tag
    for index, tag in RENAMED.items():
        tags[index] = tag
    return names, tags


CLASS_NAMES, TAGS = _load()
TAG_NAMES = sorted(set(TAGS))
_TAG_INDEX = {tag: i for i, tag in enumerate(TAG_NAMES)}
_CLASS_TO_TAG = np.array([_TAG_INDEX[tag] for tag in TAGS])


def softmax(logits):
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def top_tags(probabilities, count=5):
    """``[{"label": tag, "score": p}]``: the ``count`` likeliest tags, each
    scored with the summed probability of its classes, likeliest first."""
    scores = np.bincount(_CLASS_TO_TAG, weights=probabilities, minlength=len(TAG_NAMES))
    order = np.argsort(-scores, kind="stable")[:count]
    return [{"label": TAG_NAMES[i], "score": round(float(scores[i]), 4)} for i in order]
