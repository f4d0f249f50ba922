"""
Forms of the item pages: the JSON metadata editor and the new-item form.

The browser checks the JSON as it is typed (objects/static/objects/admin.js),
but the server decides: text that is not a JSON object, or is over
``ISTORE_MAX_METADATA_BYTES``, is refused here with a message and nothing is
written. Saving goes through ``objects.writing.write``, like the API.
"""
import json

from django import forms
from django.core.exceptions import ValidationError

from .. import jsontext, keys, writing
from ..errors import ApiError

MERGE, REPLACE = "merge", "replace"


class JSONEditor(forms.Textarea):
    """A monospace textarea that admin.js validates, formats and indents."""

    def __init__(self, attrs=None):
        defaults = {"class": "istore-json", "rows": 18, "spellcheck": "false", "data-json-editor": "object"}
        super().__init__({**defaults, **(attrs or {})})


def parse_metadata(text):
    """Parse the editor's text into a metadata object or raise ValidationError."""
    if not text.strip():
        raise ValidationError("Enter a JSON object; {} means no metadata.", code="empty")
    try:
        value = json.loads(text)
    except RecursionError:  # nesting past Python's stack; the API's own limit is far lower
        raise ValidationError(f"This JSON nests deeper than {jsontext.MAX_DEPTH} levels. Nothing was saved.",
                              code="invalid_json") from None
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line}, column {exc.colno})" if line else ""
        reason = getattr(exc, "msg", exc)
        raise ValidationError(f"This is not valid JSON{where}: {reason}. Nothing was saved.",
                              code="invalid_json") from None
    try:
        writing.check_metadata(value)
    except ApiError as exc:
        raise ValidationError(f"{exc.detail} Nothing was saved.", code=exc.code) from None
    return value


def pretty(metadata):
    """Metadata as the editor shows it: indented, non-ASCII kept readable."""
    return json.dumps(metadata, ensure_ascii=False, indent=2, sort_keys=False)


class MetadataForm(forms.Form):
    metadata = forms.CharField(widget=JSONEditor, required=False, strip=False, label="Metadata (JSON object)")
    mode = forms.ChoiceField(
        choices=[
            (REPLACE, "Replace: the metadata becomes exactly this object (like PUT)"),
            (MERGE, "Merge: apply this object as a JSON Merge Patch, null removes a field (like POST)"),
        ],
        initial=REPLACE,
        widget=forms.RadioSelect,
        label="How to save",
    )
    # The item's update time when the page was drawn: a save over a newer
    # version is refused instead of silently losing someone else's change.
    version = forms.CharField(widget=forms.HiddenInput, required=False)

    def clean_metadata(self):
        return parse_metadata(self.cleaned_data["metadata"])

    @property
    def replace(self):
        return self.cleaned_data["mode"] == REPLACE


class NewItemForm(forms.Form):
    key = forms.CharField(
        max_length=keys.MAX_KEY_BYTES, strip=False,
        widget=forms.TextInput(attrs={"class": "vTextField istore-key", "size": 80}),
        help_text="The full key, starting with '/'. End it with '/' for a folder's own item. "
                  "It may embed a source URL, as in /photos/https://example.com/cat.jpg.",
    )
    metadata = forms.CharField(widget=JSONEditor(attrs={"rows": 8}), initial="{}", strip=False,
                               label="Metadata (JSON object)")
    file = forms.FileField(required=False, label="Content (optional)",
                           help_text="Upload bytes for a plain key, as curl -T does.")

    def clean_key(self):
        key = self.cleaned_data["key"]
        try:
            keys.validate_key(key)
        except ApiError as exc:
            raise ValidationError(exc.detail) from None
        if keys.is_reserved(key) or keys.split_verb(key)[1]:
            raise ValidationError("This path is reserved (a first segment starting with '_' or a verb); "
                                  "it cannot be a key.")
        return key

    def clean_metadata(self):
        return parse_metadata(self.cleaned_data["metadata"])

    def clean(self):
        data = super().clean()
        key, upload = data.get("key"), data.get("file")
        if key and upload:
            if keys.parse_key(key).source is not None:
                self.add_error("file", "This key embeds a source URL: its bytes come from the source.")
            elif keys.is_directory(key):
                self.add_error("file", "A key ending in '/' is a folder: it holds metadata only.")
        return data
