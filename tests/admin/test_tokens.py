"""API tokens in the admin: create, list and revoke, and the API honours each."""
import pytest
from rest_framework.authtoken.models import Token

from ..conftest import Api

pytestmark = pytest.mark.django_db

USERS = "/_admin/auth/user/"
TOKENS = "/_admin/authtoken/tokenproxy/"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw")


@pytest.fixture
def anonymous_api(client, settings):
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = False
    return Api(client)


def act(admin_client, action, *users):
    data = {"action": action, "_selected_action": [user.pk for user in users]}
    return admin_client.post(USERS, data, follow=True)


def write_with(api, key):
    return api.post("/t/x", {"by": "token"}, HTTP_AUTHORIZATION=f"Token {key}").status_code


def test_create_token_action_makes_a_working_token(admin_client, alice, anonymous_api):
    response = act(admin_client, "create_api_tokens", alice)
    token = Token.objects.get(user=alice)
    assert f"API token of alice: {token.key} (new token)" in response.content.decode()
    assert write_with(anonymous_api, token.key) == 201
    assert anonymous_api.post("/t/y", {"by": "nobody"}).status_code == 401


def test_create_keeps_an_existing_token(admin_client, alice):
    token = Token.objects.create(user=alice)
    response = act(admin_client, "create_api_tokens", alice)
    assert Token.objects.get(user=alice).key == token.key
    assert "already had this token" in response.content.decode()


def test_revoke_action_stops_the_token_at_once(admin_client, alice, admin_user, anonymous_api):
    token = Token.objects.create(user=alice)
    Token.objects.create(user=admin_user)
    response = act(admin_client, "revoke_api_tokens", alice, admin_user)
    assert "Revoked 2 API tokens." in response.content.decode()
    assert not Token.objects.exists()
    assert write_with(anonymous_api, token.key) == 401


def test_user_list_says_who_has_a_token(admin_client, alice):
    Token.objects.create(user=alice)
    page = admin_client.get(USERS).content.decode()
    assert "API token" in page and "since " in page
    assert "Create an API token for the selected users" in page


def test_token_list_add_and_delete(admin_client, alice, anonymous_api):
    response = admin_client.post(TOKENS + "add/", {"user": alice.pk}, follow=True)
    assert response.status_code == 200
    token = Token.objects.get(user=alice)
    listing = admin_client.get(TOKENS).content.decode()
    assert token.key in listing and "alice" in listing
    # Revoking a single token is deleting it from its page.
    admin_client.post(f"{TOKENS}{alice.pk}/delete/", {"post": "yes"})
    assert not Token.objects.filter(user=alice).exists()
    assert write_with(anonymous_api, token.key) == 401


def test_staff_without_token_permissions_get_no_token_actions(client, django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    client.force_login(staff)
    page = client.get(USERS).content.decode()
    assert "create_api_tokens" not in page and "revoke_api_tokens" not in page
