from django.contrib import admin
from django.urls import path, re_path

from jobs.views import job_view
from objects import schema, views

urlpatterns = [
    path("_admin/", admin.site.urls),
    path("_health", views.health),
    path("_ready", views.ready),
    path("_metrics", views.metrics_view),
    path("_schema/", schema.schema_view),
    path("_jobs/<str:job_id>", job_view),
    re_path(r"^", views.namespace),
]

handler400 = "objects.views.bad_request"
handler403 = "objects.views.permission_denied"
handler404 = "objects.views.not_found"
handler500 = "objects.views.server_error"
