"""
API tokens in the admin: create, list and revoke the Django REST framework
tokens that writes need (SPEC §10).

DRF registers a token admin keyed by user (one token per user). It is kept,
with a user search box instead of a select of every user, and the user list
gains actions to create tokens for the selected users and to revoke theirs,
plus a column saying who has one. Revoking is deleting: the key stops working
at once.
"""
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from rest_framework.authtoken.admin import TokenAdmin as DrfTokenAdmin
from rest_framework.authtoken.models import Token, TokenProxy

User = get_user_model()


class TokenAdmin(DrfTokenAdmin):
    list_display = ("user", "key", "created")
    autocomplete_fields = ("user",)


class TokenUserAdmin(UserAdmin):
    actions = ["create_api_tokens", "revoke_api_tokens"]
    list_display = (*UserAdmin.list_display, "api_token")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("auth_token")

    @admin.display(description="API token")
    def api_token(self, user):
        token = getattr(user, "auth_token", None)
        return f"since {token.created:%Y-%m-%d}" if token else "—"

    def has_add_token_permission(self, request):
        return request.user.has_perm("authtoken.add_token")

    def has_delete_token_permission(self, request):
        return request.user.has_perm("authtoken.delete_token")

    @admin.action(description="Create an API token for the selected users", permissions=["add_token"])
    def create_api_tokens(self, request, queryset):
        for user in queryset:
            token, created = Token.objects.get_or_create(user=user)
            state = "new token" if created else "already had this token"
            # The admin is where a curator hands a key to a client, so it is shown.
            messages.success(request, f"API token of {user.get_username()}: {token.key} ({state}).")

    @admin.action(description="Revoke the API tokens of the selected users", permissions=["delete_token"])
    def revoke_api_tokens(self, request, queryset):
        revoked, _ = Token.objects.filter(user__in=queryset).delete()
        messages.success(request, f"Revoked {revoked} API token{'s' if revoked != 1 else ''}.")


for model, model_admin in ((TokenProxy, TokenAdmin), (User, TokenUserAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
