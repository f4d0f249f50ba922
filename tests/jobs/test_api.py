"""The jobs API over HTTP: Prefer: respond-async, GET and DELETE /_jobs/{id}, and who may see a job."""
import json

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from jobs.models import Job
from tests.conftest import Api

from .conftest import job_of, read_job, start, vectors

INDEX = {"similar": {"by": "vec"}}


@pytest.fixture
def indexed_dir(jobs_api):
    vectors(jobs_api, "/v/", 20)
    return "/v/"


def test_respond_async_answers_202_at_once_with_the_job(jobs_api, indexed_dir):
    response = start(jobs_api, indexed_dir, "_create_index", INDEX)
    job = job_of(response)
    assert json.loads(response.content) == {"job": job, "state": "queued"}, "the 202 body is the job, queued"
    assert response["Location"] == f"/_jobs/{job}", "the 202 points at the job"
    assert response["Preference-Applied"] == "respond-async", "the preference is said to be applied"


def test_a_queued_job_reads_as_queued_without_progress_or_result(jobs_api, indexed_dir):
    job = job_of(start(jobs_api, indexed_dir, "_create_index", INDEX))
    data = read_job(jobs_api, job)
    assert (data["job"], data["state"], data["progress"], data["result"], data["error"]) == (
        job, "queued", {"done": 0, "total": 0}, None, None), f"a job no worker took yet: {data}"


def test_a_done_job_holds_the_body_the_verb_answers(jobs_api, indexed_dir, run_jobs):
    synchronous = json.loads(jobs_api.verb(indexed_dir, "_create_index", INDEX).content)
    job = job_of(start(jobs_api, indexed_dir, "_create_index", INDEX))
    run_jobs()
    data = read_job(jobs_api, job)
    assert data["state"] == "done", f"the worker ran the job: {data}"
    assert data["result"] == synchronous, "result is the body the verb answers without the header"
    assert data["progress"]["done"] == data["progress"]["total"] > 0, f"a done job's progress is complete: {data}"


def test_a_job_whose_verb_fails_is_failed_with_the_verbs_error(jobs_api, indexed_dir, run_jobs):
    job = job_of(start(jobs_api, indexed_dir, "_create_index", INDEX))
    assert jobs_api.delete(indexed_dir).status_code == 200  # the vectors go before a worker takes the job
    run_jobs()
    data = read_job(jobs_api, job)
    assert data["state"] == "failed" and data["result"] is None, f"the build had nothing to index: {data}"
    assert data["error"]["error"] == "no_vectors" and data["error"]["detail"], "error is the verb's own error body"


def test_without_the_header_a_verb_answers_as_before(jobs_api, indexed_dir):
    response = jobs_api.verb(indexed_dir, "_create_index", INDEX)
    assert response.status_code == 201 and json.loads(response.content)["indexed"] == 20, response.content
    assert not Job.objects.exists(), "no job is made for a verb answered in the request"


def test_other_preferences_are_ignored(jobs_api, indexed_dir):
    response = start(jobs_api, indexed_dir, "_create_index", INDEX, prefer="return=minimal, handling=lenient")
    assert response.status_code == 201, "preferences istore does not support change nothing"
    assert "Preference-Applied" not in response


@pytest.mark.parametrize("prefer", ["respond-async=yes", "respond-async, wait=soon", "wait=-1, respond-async",
                                    "respond async", "@@"])
def test_a_malformed_prefer_is_400_and_starts_nothing(jobs_api, indexed_dir, prefer):
    response = start(jobs_api, indexed_dir, "_create_index", INDEX, prefer=prefer)
    assert response.status_code == 400, f"Prefer: {prefer} must be refused, got {response.status_code}"
    assert json.loads(response.content)["error"] == "invalid_prefer"
    assert not Job.objects.exists(), "a refused request makes no job"


def test_a_bad_body_is_answered_at_once_and_makes_no_job(jobs_api, indexed_dir):
    response = start(jobs_api, indexed_dir, "_create_index", {"similar": {}})
    assert response.status_code == 400 and json.loads(response.content)["error"] == "invalid_search"
    response = start(jobs_api, "/empty/", "_create_index", INDEX)
    assert response.status_code == 404 and json.loads(response.content)["error"] == "no_vectors"
    assert not Job.objects.exists(), "a job is made only for a request the verb accepts"


def test_a_verb_estimated_past_the_budget_answers_202_without_the_header(jobs_api, indexed_dir, settings):
    settings.ISTORE_JOBS_SYNC_SECONDS = 0.001  # 20 vectors are then too many for a request
    response = jobs_api.verb(indexed_dir, "_create_index", INDEX)
    job = job_of(response)
    assert response["Location"] == f"/_jobs/{job}"
    assert "Preference-Applied" not in response, "no preference was asked for"


def test_cancelling_a_queued_job_means_it_never_runs(jobs_api, indexed_dir, run_jobs):
    job = job_of(start(jobs_api, indexed_dir, "_create_index", INDEX))
    response = jobs_api.client.delete(f"/_jobs/{job}")
    assert response.status_code == 200 and json.loads(response.content)["state"] == "cancelled", response.content
    run_jobs()
    data = read_job(jobs_api, job)
    assert data["state"] == "cancelled" and data["result"] is None and data["started"] is None, data


def test_cancelling_a_finished_job_is_409(jobs_api, indexed_dir, run_jobs):
    job = job_of(start(jobs_api, indexed_dir, "_create_index", INDEX))
    run_jobs()
    response = jobs_api.client.delete(f"/_jobs/{job}")
    assert response.status_code == 409 and json.loads(response.content)["error"] == "job_finished"
    assert read_job(jobs_api, job)["state"] == "done", "a refused cancel changes nothing"


@pytest.mark.parametrize("path", ["/_jobs/not-a-job", "/_jobs/00000000-0000-4000-8000-000000000000", "/_jobs/",
                                  "/_jobs/00000000-0000-4000-8000-000000000000/more"])
def test_a_bad_job_id_is_404_json(jobs_api, path):
    for method in ("get", "delete"):
        response = getattr(jobs_api.client, method)(path)
        assert response.status_code == 404, f"{method.upper()} {path}: {response.status_code}"
        assert response["Content-Type"] == "application/json" and json.loads(response.content)["detail"]


def test_other_methods_on_a_job_are_405(jobs_api, indexed_dir):
    job = job_of(start(jobs_api, indexed_dir, "_create_index", INDEX))
    response = jobs_api.client.post(f"/_jobs/{job}")
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD, DELETE"
    assert json.loads(response.content)["error"] == "method_not_allowed"


# --- Who may see and cancel a job ---------------------------------------------------------


def token_for(name, staff=False):
    user = User.objects.create_user(name, is_staff=staff)
    return {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=user).key}"}


@pytest.fixture
def alice_job(client, transactional_db, settings):
    """A job Alice started with her token, on a store without anonymous writes."""
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = False
    api, alice = Api(client), token_for("alice")
    for i in range(3):
        assert api.post(f"/p/{i}", {"vec": [1, i]}, **alice).status_code == 201
    return api, alice, job_of(start(api, "/p/", "_create_index", INDEX, **alice))


def test_the_user_who_started_a_job_sees_and_cancels_it(alice_job):
    api, alice, job = alice_job
    assert read_job(api, job, **alice)["state"] == "queued"
    assert api.client.delete(f"/_jobs/{job}", **alice).status_code == 200


def test_another_user_neither_sees_nor_cancels_it(alice_job):
    api, _, job = alice_job
    bob = token_for("bob")
    assert api.client.get(f"/_jobs/{job}", **bob).status_code == 404, "Bob must not see Alice's job"
    assert api.client.delete(f"/_jobs/{job}", **bob).status_code == 404, "Bob must not cancel Alice's job"
    assert Job.objects.get().state == "queued", "Bob's DELETE changed nothing"


def test_staff_see_every_job(alice_job):
    api, _, job = alice_job
    assert read_job(api, job, **token_for("root", staff=True))["job"] == job


def test_a_job_needs_credentials(alice_job, settings):
    api, _, job = alice_job
    response = api.client.get(f"/_jobs/{job}")
    assert response.status_code == 401 and json.loads(response.content)["error"] == "not_authenticated"
    assert api.client.get(f"/_jobs/{job}", HTTP_AUTHORIZATION="Token wrong").status_code == 401
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = True
    assert api.client.get(f"/_jobs/{job}").status_code == 404, "an anonymous writer sees only anonymous jobs"


def test_the_admin_lists_jobs_and_cancels_them(jobs_api, indexed_dir, admin_client):
    job = job_of(start(jobs_api, indexed_dir, "_create_index", INDEX))
    page = admin_client.get("/_admin/jobs/job/")
    assert page.status_code == 200 and job.encode() in page.content, "the job is listed in the admin"
    admin_client.post("/_admin/jobs/job/", {"action": "cancel", "_selected_action": [job]})
    assert read_job(jobs_api, job)["state"] == "cancelled", "the admin's cancel action cancels the job"
