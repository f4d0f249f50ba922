"""The documentation describes the API the server has, and stands on its own.

docs/api.md is the API reference: every path, parameter and status of the
OpenAPI document at ``/_schema/`` (built from the code's registries) is named
there, and every error code the code can answer is named in the docs. The
README and docs link only to files inside the repository, and never to a
contract kept elsewhere.
"""
import re

import pytest

from objects import jsontext, schema
from tests.servers import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
API = (ROOT / "docs" / "api.md").read_text()
ALL_DOCS = "\n".join(page.read_text() for page in DOCS)
SOURCES = [path for package in ("objects", "processing", "search", "recognition", "jobs") for path in (ROOT / package).rglob("*.py")]
# Error codes as the code writes them: ApiError(code=...), class attributes, and error(status, code, ...).
CODE_PATTERNS = (r'\bcode="([a-z_]+)"', r'^\s+code = "([a-z_]+)"', r'status, code = \d+, "([a-z_]+)"',
                 r'\berror\(\d{3}, "([a-z_]+)"')


def schema_operations():
    for path, item in schema.build()["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield path, operation


def test_every_schema_path_is_in_the_reference():
    for path in schema.build()["paths"]:
        named = path.replace("/{dir}", "") if path.startswith("/{dir}") else path
        if named == "/{key}":
            continue
        assert f"`{named}" in API or f"`{named.rstrip('/')}" in API, f"docs/api.md does not name {named}"


def test_every_schema_parameter_is_in_the_docs():
    for path, operation in schema_operations():
        for parameter in operation.get("parameters", []):
            name = parameter["name"]
            if name in ("key", "dir"):
                continue
            assert re.search(rf"`{re.escape(name)}[`=:]", ALL_DOCS), (
                f"{parameter['in']} parameter {name!r} of {path} is in /_schema/ but in no page of docs/")


def test_every_schema_status_is_in_the_reference():
    for path, operation in schema_operations():
        for status in operation["responses"]:
            assert re.search(rf"\b{status}\b", API), f"status {status} of {path} is not in docs/api.md"


def error_codes():
    found = {}
    for path in SOURCES:
        text = path.read_text()
        for pattern in CODE_PATTERNS:
            for match in re.finditer(pattern, text, re.M):
                line = text[text.rfind("\n", 0, match.start()) + 1:text.find("\n", match.start())]
                if "ValidationError" not in line:  # the admin's form errors are not API answers
                    found.setdefault(match.group(1), path.relative_to(ROOT))
    return found


@pytest.mark.parametrize("code", sorted(error_codes()))
def test_every_error_code_is_documented(code):
    assert f"`{code}`" in ALL_DOCS, f"the error code {code!r} ({error_codes()[code]}) is in no page of docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_links_resolve_inside_the_repository(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if target.startswith(("http:", "https:", "mailto:")):
            continue
        path = (page.parent / target).resolve()
        assert path.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
        assert path.exists(), f"{page.name} links to a missing file: {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_docs_stand_on_their_own(page):
    text = page.read_text()
    for outside in ("SPEC.md", "../shared", "§"):
        assert outside not in text, f"{page.name} refers to {outside!r}, which users of the repository do not have"


def test_schema_stands_on_its_own():
    text = jsontext.dumps(schema.build())
    for outside in ("SPEC", "§"):
        assert outside not in text, f"/_schema/ refers to {outside!r}, which users of the repository do not have"
