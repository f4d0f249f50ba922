"""
Recognition in the admin: a folder's near-duplicate groups, an item's tags
and its five most similar items, and ``_labels=cat`` in the find box.

They plug into the objects app's pages through ``objects.admin.extensions``
(a "Duplicates" link on every folder page, a panel on every picture's page),
and reuse the API's own functions: ``duplicates.find_groups`` behind
``_duplicates``, ``search.ann.search`` behind ``_search``. The duplicates
page lives at ``/_admin/recognition/features/duplicates/?dir=/album/``, a URL
of the (otherwise hidden) Features admin.
"""
from urllib.parse import urlencode

import numpy as np
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from jobs import queue
from jobs import views as jobs_views
from jobs.models import Job
from objects import keys
from objects.admin import browse, extensions
from objects.admin.views import _context, folder_url, item_url
from objects.errors import ApiError
from objects.models import Item, hash_key
from search import ann, spaces

from . import duplicates, store, verbs
from .models import TAG_MIN_SCORE, Features, Tag

SIMILAR_COUNT = 5
# Groups and pictures per group that one duplicates page shows.
MAX_GROUPS = 200
MAX_GROUP_SHOWN = 24


def can_browse(request):
    return request.user.is_active and request.user.is_staff and request.user.has_perm("objects.view_item")


def duplicates_url(prefix, **params):
    query = {"dir": prefix, **{name: value for name, value in params.items() if value not in (None, "")}}
    return reverse("admin:recognition_features_duplicates") + "?" + urlencode(query)


def _rows(item_keys, prefix):
    """Admin rows (thumbnail, link) for the items at ``item_keys``, in that order."""
    found = {}
    for start in range(0, len(item_keys), 500):
        hashes = [hash_key(key) for key in item_keys[start : start + 500]]
        for item in Item.objects.filter(key_hash__in=hashes):  # the unique index, not a scan of keys
            found[item.key] = item
    rows = []
    for key in item_keys:
        if key in found:
            row = browse.item_row(found[key], prefix)
            row.url = item_url(row.item)
            rows.append(row)
    return rows


def _parse(data):
    """``(prefix, body, by, max_distance)`` from the page's query string: the
    folder, and the ``_duplicates`` body it asks for, checked and read as the
    verb reads it (ApiError)."""
    prefix = data.get("dir") or "/"
    prefix = keys.validate_key(prefix if prefix.endswith("/") else prefix + "/")
    body = {"by": data.get("by") or store.PDQ}
    text = data.get("max_distance", "").strip()
    if text:
        try:
            body["max_distance"] = float(text)
        except ValueError:
            body["max_distance"] = text  # refused by parse, with its message
    return (prefix, body, *verbs.parse(body))


def _groups_of_job(request, job_id):
    """``(job, groups, error)`` of a ``_duplicates`` job the page started."""
    job = jobs_views.find(job_id, request.user)
    if job.state == Job.DONE:
        return job, job.result["groups"], None
    if job.state in (Job.FAILED, Job.CANCELLED):
        return job, [], f"The comparison {job.state}: {(job.error or {}).get('detail', '')}"
    return job, [], None


def duplicates_page(model_admin, request):
    """The near-duplicate groups of a folder, as ``_duplicates`` answers them,
    with thumbnails. A folder too large to compare within a request is
    compared by a ``_duplicates`` job; the page follows it until it is done."""
    if not can_browse(request):
        raise PermissionDenied
    prefix, by, max_distance, error, groups, job = "/", store.PDQ, None, None, [], None
    try:
        prefix, body, by, max_distance = _parse(request.GET)
        if request.GET.get("job"):
            job, groups, error = _groups_of_job(request, request.GET["job"])
        elif verbs.plan_duplicates(body, prefix) > settings.ISTORE_JOBS_SYNC_SECONDS:
            job = queue.enqueue("_duplicates", {"dir": prefix, "body": body}, owner=request.user)
            return redirect(duplicates_url(prefix, by=by, max_distance=request.GET.get("max_distance"), job=job.id))
        else:
            groups = duplicates.find_groups(prefix, by, max_distance)
    except ApiError as exc:
        error = exc.detail
    shown = [
        {"rows": _rows(group[:MAX_GROUP_SHOWN], prefix), "size": len(group)}
        for group in groups[:MAX_GROUPS]
    ]
    context = _context(
        model_admin, request,
        title=f"Duplicates in {prefix}",
        prefix=prefix,
        crumbs=[(label, folder_url(p)) for label, p in browse.breadcrumbs(prefix)],
        folder_url=folder_url(prefix),
        by=by,
        features=sorted(duplicates.DEFAULT_MAX_DISTANCE),
        max_distance=max_distance,
        max_distance_text=request.GET.get("max_distance", ""),
        defaults=duplicates.DEFAULT_MAX_DISTANCE,
        groups=shown,
        group_count=len(groups),
        item_count=sum(len(group) for group in groups),
        more_groups=len(groups) > MAX_GROUPS,
        max_groups=MAX_GROUPS,
        error=error,
        job=job,
        running=job is not None and job.state in Job.UNFINISHED,
    )
    return TemplateResponse(request, "admin/recognition/duplicates.html", context)


def folder_tool(request, prefix):
    return ("Duplicates", duplicates_url(prefix)) if can_browse(request) else None


def similar_rows(item):
    """``[(row, distance)]``: the SIMILAR_COUNT items of ``item``'s folder nearest
    to it by embedding (itself left out), or [] when it has none stored."""
    blob = store.Vector.objects.filter(item_id=item.id, field=store.EMBEDDING).values_list("vector", flat=True).first()
    if blob is None:
        return []
    query = np.frombuffer(bytes(blob), dtype=spaces.DTYPE).astype(np.float64)[None, :]
    found = ann.search(item.dir, store.EMBEDDING, store.DIMS[store.EMBEDDING], query, SIMILAR_COUNT + 1)
    rows = []
    for other, distance in found:
        if other.id != item.id and len(rows) < SIMILAR_COUNT:
            row = browse.item_row(other, item.dir)
            row.url = item_url(other)
            rows.append((row, distance))
    return rows


def item_panel(request, item):
    """The tags and similar items of a picture's page."""
    if not store.wants_features(item):
        return None
    features = store.current(item.id)
    labels = []
    if features is not None and not features.error:
        labels = [
            {**label, "is_tag": label["score"] >= TAG_MIN_SCORE,
             "find_url": folder_url(item.dir, q=f"_labels={label['label']}")}
            for label in features.labels
        ]
    return {
        "template": "admin/recognition/item_panel.html",
        "features": features,
        "labels": labels,
        "similar": similar_rows(item) if features is not None and not features.error else [],
        "folder": item.dir,
        "duplicates_url": duplicates_url(item.dir),
    }


def with_tag(query, value):
    """Items tagged ``value`` (one of their labels, scoring at least TAG_MIN_SCORE)."""
    tagged = Tag.objects.filter(label=value.strip().strip('"').lower()).values("item_id")
    return query.filter(id__in=tagged)


extensions.FOLDER_TOOLS.append(folder_tool)
extensions.ITEM_PANELS.append(item_panel)
extensions.FIND_FIELDS["_labels"] = with_tag


@admin.register(Features)
class FeaturesAdmin(admin.ModelAdmin):
    """Only a home for the duplicates page: features are edited by no one."""

    def get_urls(self):
        return [
            path("duplicates/", self.admin_site.admin_view(self.duplicates_view),
                 name="recognition_features_duplicates"),
        ]

    def duplicates_view(self, request):
        return duplicates_page(self, request)

    def get_model_perms(self, request):
        return {}  # not listed on the admin's index
