"""
The admin's pages over the namespace: a folder (or find results), an item with
its preview and JSON editor, a new item, and deletes that state their count.

The views are thin. Queries live in browse.py, what an item looks like in
previews.py, validation in forms.py; every write goes through
objects.writing, exactly as the API's writes do, so the admin can never leave
the store in a state the API could not.
"""
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from . import browse, extensions, previews
from .. import content, keys, listing, writing
from ..errors import ApiError
from ..models import Item, hash_key
from .forms import REPLACE, MetadataForm, NewItemForm, pretty

TEMPLATES = "admin/objects/item/"


def folder_url(prefix="/", **params):
    """The admin URL of a folder page (``params``: ``q``, ``after``)."""
    query = {"dir": prefix, **{name: value for name, value in params.items() if value}}
    return reverse("admin:objects_item_changelist") + "?" + urlencode(query)


def item_url(item):
    return reverse("admin:objects_item_change", args=[item.pk])


def version_of(item):
    """What the editor sends back to detect a save over a newer version."""
    return item.updated.isoformat() if item.updated else ""


def _context(model_admin, request, **extra):
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "app_label": model_admin.model._meta.app_label,
        "root_url": folder_url("/"),
        **extra,
    }


def _prefix(data):
    """The folder a request names in ``dir``, made a valid directory key."""
    prefix = data.get("dir") or "/"
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    if not prefix.endswith("/"):
        prefix += "/"
    return keys.validate_key(prefix)


def _linked(row):
    row.url = item_url(row.item)
    return row


def _get_item(model_admin, request, object_id):
    """The item, or None after telling the user it is gone."""
    try:
        item = model_admin.get_queryset(request).filter(pk=int(object_id)).first()
    except ValueError:
        item = None
    if item is None:
        messages.warning(request, f"No item has the id {object_id!r}; it may have been deleted.")
    return item


def folder(model_admin, request):
    """A folder's direct children (folders with bounded counts, then items), or find results."""
    if not model_admin.has_view_or_change_permission(request):
        raise PermissionDenied
    try:
        prefix = _prefix(request.GET)
    except ApiError as exc:
        messages.error(request, f"That folder cannot exist: {exc.detail}")
        return redirect(folder_url("/"))
    after = request.GET.get("after") or None
    text = request.GET.get("q", "")
    description = error = None
    rows, next_after = [], None
    if text.strip():
        try:
            rows, next_after, description = browse.find(text, prefix, after)
        except (browse.FindError, ApiError) as exc:
            error = getattr(exc, "detail", None) or str(exc)
    else:
        rows, next_after = browse.folder_page(prefix, after)
    browse.add_posters(rows)
    for row in rows:
        row.url = item_url(row.item) if row.item else folder_url(row.key)
    parent = browse.parent_of(prefix)
    context = _context(
        model_admin, request,
        title=f"Find in {prefix}" if text.strip() else prefix,
        prefix=prefix,
        crumbs=[(label, folder_url(path)) for label, path in browse.breadcrumbs(prefix)],
        rows=rows,
        count=browse.count_under(prefix),
        find_text=text,
        find_description=description,
        find_error=error,
        parent_url=folder_url(parent) if parent else None,
        next_url=folder_url(prefix, q=text, after=next_after) if next_after else None,
        first_url=folder_url(prefix, q=text) if after else None,
        has_folder_item=any(row.key == prefix and row.item for row in rows),
        add_url=reverse("admin:objects_item_add") + "?" + urlencode({"key": prefix}),
        delete_folder_url=reverse("admin:objects_item_delete_folder") + "?" + urlencode({"dir": prefix}),
        can_add=model_admin.has_add_permission(request),
        can_delete=model_admin.has_delete_permission(request) and prefix != "/",
        tools=extensions.folder_tools(request, prefix),
        page_size=browse.PAGE_SIZE,
        count_cap=browse.COUNT_CAP,
    )
    return TemplateResponse(request, TEMPLATES + "folder.html", context)


def _save_metadata(item, form):
    """Write the edited metadata through objects.writing; return the saved item or None."""
    try:
        with transaction.atomic():
            current = Item.objects.select_for_update().filter(pk=item.pk).first()
            if current is None:
                form.add_error(None, "This item was deleted while you edited it. Nothing was saved.")
                return None
            version = form.cleaned_data.get("version")
            if form.replace and version and version != version_of(current):
                # A replace over a newer version would drop someone's change;
                # a merge patch applies cleanly to any version, like POST.
                form.add_error(None, "This item changed since you opened it. Nothing was saved: reload the "
                                     "page to see the new metadata, or save as a merge.")
                return None
            saved, _ = writing.write(current.key, form.cleaned_data["metadata"], replace=form.replace)
    except ApiError as exc:
        form.add_error("metadata", f"{exc.detail} Nothing was saved.")
        return None
    return saved


def item(model_admin, request, object_id):
    """One item: read-only facts, preview, frame strip, and the metadata editor."""
    obj = _get_item(model_admin, request, object_id)
    if obj is None:
        return redirect(folder_url("/"))
    if not model_admin.has_view_or_change_permission(request, obj):
        raise PermissionDenied
    can_change = model_admin.has_change_permission(request, obj)
    if request.method == "POST":
        if not can_change:
            raise PermissionDenied
        form = MetadataForm(request.POST)
        if form.is_valid():
            saved = _save_metadata(obj, form)
            if saved is not None:
                how = "replaced" if form.replace else "merged"
                model_admin.log_change(request, saved, [{"changed": {"fields": ["metadata"]}}])
                messages.success(request, f"Metadata of {saved.key} {how}.")
                return redirect(item_url(saved))
    else:
        form = MetadataForm(initial={"metadata": pretty(obj.metadata), "mode": REPLACE,
                                     "version": version_of(obj)})
    # The editor grows with the metadata, within reason.
    lines = (form["metadata"].value() or "").count("\n") + 3
    form.fields["metadata"].widget.attrs["rows"] = max(8, min(lines, 30))
    kind = previews.kind(obj)
    frames, more_frames = ([], False) if kind in ("frame", "folder") else browse.frames_of(obj)
    parsed = keys.parse_key(obj.key)
    name = obj.key[len(obj.dir):] or obj.key
    context = _context(
        model_admin, request,
        title=name,
        item=obj,
        kind=kind,
        source=parsed.source,
        crumbs=[(label, folder_url(path)) for label, path in browse.breadcrumbs(obj.dir)],
        folder_url=folder_url(obj.dir),
        key_url=previews.key_url(obj.key),
        meta_url=previews.meta_url(obj.key),
        preview_url=previews.thumb_url(obj.key, previews.PREVIEW_SIZE) if kind in ("image", "frame") else "",
        size=previews.human_size(obj.content_size),
        frames=[_linked(browse.item_row(frame, obj.dir)) for frame in frames],
        more_frames_url=folder_url(obj.dir, q=browse.frame_prefix(obj)) if more_frames else None,
        video=browse.video_of(obj) if kind == "frame" else None,
        video_key=obj.metadata.get("video") if kind == "frame" else None,
        form=form,
        can_change=can_change,
        can_delete=model_admin.has_delete_permission(request, obj),
        delete_url=reverse("admin:objects_item_delete", args=[obj.pk]),
        history_url=reverse("admin:objects_item_history", args=[obj.pk]),
        panels=extensions.item_panels(request, obj),
    )
    return TemplateResponse(request, TEMPLATES + "item.html", context)


def add(model_admin, request):
    """Register a new key with metadata and, optionally, uploaded content."""
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    if request.method == "POST":
        form = NewItemForm(request.POST, request.FILES)
        if form.is_valid():
            key = form.cleaned_data["key"]
            existing = Item.objects.filter(key_hash=hash_key(key)).first()
            if existing is not None:
                form.add_error("key", f"{key} already exists (id {existing.pk}); edit it on its own page.")
            else:
                try:
                    upload = form.cleaned_data.get("file")
                    stored = content.store_uploaded_file(upload, key) if upload else None
                    saved, _ = writing.write(key, form.cleaned_data["metadata"], replace=True, stored=stored)
                except ApiError as exc:
                    form.add_error(None, exc.detail)
                else:
                    model_admin.log_addition(request, saved, [{"added": {}}])
                    messages.success(request, f"Created {saved.key}.")
                    return redirect(item_url(saved))
    else:
        form = NewItemForm(initial={"key": request.GET.get("key") or "/", "metadata": "{}"})
    return TemplateResponse(request, TEMPLATES + "add.html", _context(
        model_admin, request, title="New item", form=form,
        crumbs=[(label, folder_url(path)) for label, path in browse.breadcrumbs(_safe_dir(form))],
    ))


def _safe_dir(form):
    key = form.data.get("key") if form.is_bound else form.initial.get("key")
    try:
        return keys.dir_of(keys.validate_key(key or "/"))
    except ApiError:
        return "/"


def delete_item(model_admin, request, object_id):
    """Confirm, then delete one item (and its content) through objects.writing."""
    obj = _get_item(model_admin, request, object_id)
    if obj is None:
        return redirect(folder_url("/"))
    if not model_admin.has_delete_permission(request, obj):
        raise PermissionDenied
    if request.method == "POST":
        try:
            writing.delete(obj.key)
        except ApiError as exc:
            messages.warning(request, exc.detail)
        else:
            model_admin.log_deletions(request, [obj])
            messages.success(request, f"Deleted 1 item: {obj.key}.")
        return redirect(folder_url(obj.dir))
    return TemplateResponse(request, TEMPLATES + "delete_item.html", _context(
        model_admin, request, title="Delete this item?", item=obj, item_url=item_url(obj),
        crumbs=[(label, folder_url(path)) for label, path in browse.breadcrumbs(obj.dir)],
    ))


def delete_folder(model_admin, request):
    """Confirm with the exact count, then delete every item under a folder."""
    if not model_admin.has_delete_permission(request):
        raise PermissionDenied
    try:
        prefix = _prefix(request.POST if request.method == "POST" else request.GET)
    except ApiError as exc:
        messages.error(request, f"That folder cannot exist: {exc.detail}")
        return redirect(folder_url("/"))
    if prefix == "/":
        # Emptying the whole store is one DELETE / away in the API; the admin
        # does not offer it next to everyday buttons.
        messages.error(request, "The root folder cannot be deleted from the admin.")
        return redirect(folder_url("/"))
    if request.method == "POST":
        deleted = writing.delete_tree(prefix)
        messages.success(request, f"Deleted {deleted} item{'s' if deleted != 1 else ''} under {prefix}.")
        return redirect(folder_url(browse.parent_of(prefix)))
    count = browse.exact_count(prefix)
    sample, more = listing.page(prefix, 10)
    return TemplateResponse(request, TEMPLATES + "delete_folder.html", _context(
        model_admin, request, title=f"Delete the folder {prefix}?", prefix=prefix, count=count,
        sample=sample, more=more is not None, folder_url=folder_url(prefix),
        crumbs=[(label, folder_url(path)) for label, path in browse.breadcrumbs(prefix)],
    ))
