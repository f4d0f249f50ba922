"""A bare Django view returning fixed bytes, served by the same gunicorn as istore."""
from django.http import HttpResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

BODY = b'{"_id":1,"_filepath":"/bench/x","metadata":{}}'


@csrf_exempt
def fixed(request):
    return HttpResponse(BODY, content_type="application/json")


urlpatterns = [re_path(r"^", fixed)]
