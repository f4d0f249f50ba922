"""The parameter schema types: strict parsing, ranges, canonical text, error messages."""
import pytest
from django.http import QueryDict

from processing.errors import BadParameter
from processing.params import (Choice, Float, Int, Less, MaxProduct, Rects, canonical_params, getlist,
                               parse_params)


def parse(schema, query, constraints=(), skip=None):
    return parse_params("op", schema, QueryDict(query), constraints, skip)


def bad(schema, query, constraints=()):
    with pytest.raises(BadParameter) as err:
        parse(schema, query, constraints)
    return err.value.detail


@pytest.mark.parametrize("raw", ["abc", "1.5", "1_0", " 1", "1 ", "0x10", "1e3", "9" * 16, "--1"])
def test_int_rejects_non_integers_naming_the_parameter(raw):
    detail = bad([Int("w")], f"w={raw}")
    assert "parameter w cannot be" in detail and "an integer" in detail


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "1e999", "1_0.0", "1,5", "e1", ".", "0x1p3"])
def test_float_rejects_non_finite_and_odd_spellings(raw):
    assert "parameter sigma cannot be" in bad([Float("sigma")], "sigma=" + raw.replace("+", "%2B"))


@pytest.mark.parametrize("raw,value", [("1.5", 1.5), ("-.5", -0.5), ("+2", 2.0), ("1e1", 10.0), ("3.", 3.0)])
def test_float_accepts_ordinary_numbers(raw, value):
    assert parse([Float("x")], "x=" + raw.replace("+", "%2B")) == {"x": value}


def test_missing_empty_and_repeated_parameters_are_named():
    assert "parameter w is missing" in bad([Int("w")], "")
    assert "parameter w is empty" in bad([Int("w")], "w=")
    assert "parameter w is given 2 times" in bad([Int("w")], "w=1&w=2")


def test_defaults_fill_missing_optional_parameters():
    assert parse([Int("w", default=0)], "") == {"w": 0}


@pytest.mark.parametrize("param,raw", [
    (Int("w", min=0), "-1"), (Int("q", min=1, max=100), "101"), (Float("p", min=-100, max=100), "-100.5"),
    (Float("g", gt=0), "0"), (Float("g", gt=0), "-3"),
])
def test_out_of_range_names_parameter_and_range(param, raw):
    detail = bad([param], f"{param.name}={raw}")
    assert f"parameter {param.name} is out of range" in detail
    assert "it must be" in detail


def test_range_bounds_are_inclusive_and_gt_is_strict():
    assert parse([Float("p", min=-100, max=100)], "p=-100") == {"p": -100.0}
    assert parse([Float("g", gt=0)], "g=0.001") == {"g": 0.001}


def test_callable_bounds_are_read_at_parse_time():
    limit = {"v": 10}
    param = Int("w", max=lambda: limit["v"])
    assert parse([param], "w=10") == {"w": 10}
    limit["v"] = 5
    assert "an integer <= 5" in bad([param], "w=10")


def test_alias_is_read_and_primary_name_wins():
    schema = [Float("sigma", aliases=("sigmoid",))]
    assert parse(schema, "sigmoid=2") == {"sigma": 2.0}
    assert parse(schema, "sigmoid=2&sigma=3") == {"sigma": 3.0}


def test_example_appears_in_the_message():
    assert "e.g. w=320" in bad([Int("w", example=320)], "w=x")


def test_choice_is_case_insensitive_and_canonicalizes_synonyms():
    fmt = Choice("format", ["jpeg", "jpg", "png"], default=None,
                 canonical=lambda v: {"jpg": "jpeg"}.get(v, v))
    assert parse([fmt], "format=PNG") == {"format": "png"}
    assert fmt.canonical(parse([fmt], "format=jpg")["format"]) == "jpeg"
    assert "one of jpeg, jpg, png" in bad([fmt], "format=bmp")


def test_canonical_text_is_stable_across_spellings():
    schema = [Int("w"), Float("s")]
    a = canonical_params(schema, parse(schema, "w=0320&s=1.50"))
    b = canonical_params(schema, parse(schema, "s=1.5&w=320"))
    assert a == b == "s=1.5&w=320"
    assert canonical_params(schema, parse(schema, "w=1&s=10.0")) == "s=10&w=1"
    assert canonical_params(schema, parse(schema, "w=1&s=-0")) == "s=0&w=1"


def test_rects_parse_with_default_colours_in_order():
    rects = parse([Rects("rects")], "rects=x1/1,y1/2,x2/3,y2/4,r/255&rects=y2/9,x2/8,y1/7,x1/6")["rects"]
    assert rects == ((1, 2, 3, 4, 255, 0, 0), (6, 7, 8, 9, 0, 0, 0))
    assert Rects("rects").canonical(rects) == (
        "x1/1,y1/2,x2/3,y2/4,r/255,g/0,b/0;x1/6,y1/7,x2/8,y2/9,r/0,g/0,b/0")


@pytest.mark.parametrize("raw,words", [
    ("x1/1,y1/2,x2/3", "lacks y2"),
    ("x1/1,y1/2,x2/3,y2/4,r/256", "colors are 0..255"),
    ("x1/1,y1/2,x2/3,y2/4,q/1", "bad item"),
    ("x1/1,y1/2,x2/3,y2/4,x1/5", "gives x1 twice"),
    ("x1/a,y1/2,x2/3,y2/4", "not an integer"),
    ("x1:1,y1/2,x2/3,y2/4", "bad item"),
    ("x1/5,y1/2,x2/3,y2/4", "x1 > x2"),
    ("x1/1,y1/2,x2/3,y2/99999999999", "at most"),
])
def test_rects_errors_name_the_parameter(raw, words):
    detail = bad([Rects("rects")], "rects=" + raw)
    assert "parameter rects" in detail and words in detail


def test_rects_count_is_limited():
    assert "more than 2" in bad([Rects("rects", max_count=2)], "&".join(["rects=x1/1,y1/1,x2/2,y2/2"] * 3))


def test_constraints_and_their_skip():
    schema = [Int("x1", default=0), Int("x2", default=0)]
    assert "parameter x2 must be greater than x1" in bad(schema, "x1=5&x2=5", [Less("x1", "x2")])
    assert parse(schema, "", [Less("x1", "x2")], skip=lambda v: not any(v.values())) == {"x1": 0, "x2": 0}
    assert "w x h = 200" in bad([Int("w"), Int("h")], "w=10&h=20", [MaxProduct("w", "h", lambda: 100)])


def test_getlist_accepts_plain_mappings():
    assert getlist({"a": "1"}, "a") == ["1"]
    assert getlist({"a": ["1", "2"]}, "a") == ["1", "2"]
    assert getlist({}, "a") == []
    assert parse_params("op", [Int("w")], {"w": "3"}) == {"w": 3}
