"""
S3 credentials in the admin: list, create (the keys are made up when left
blank, and shown once in a message, as the command prints them), revoke by
deleting. Multipart uploads in progress can be seen and deleted too.
"""
from django import forms
from django.contrib import admin, messages

from objects import content

from .models import Credential, MultipartUpload


class CredentialForm(forms.ModelForm):
    class Meta:
        model = Credential
        fields = ("user", "description", "access_key", "secret_key")
        widgets = {"secret_key": forms.PasswordInput(render_value=False)}
        help_texts = {"access_key": "Leave as proposed, or give your own.",
                      "secret_key": "Leave blank to have one made up (shown once, after saving)."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["secret_key"].required = False


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    form = CredentialForm
    list_display = ("access_key", "user", "description", "created")
    search_fields = ("access_key", "user__username", "description")
    autocomplete_fields = ("user",)

    def get_readonly_fields(self, request, obj=None):
        return ("access_key", "user", "created") if obj is not None else ()

    def get_fields(self, request, obj=None):
        return ("user", "description", "access_key", "created") if obj is not None else super().get_fields(request)

    def save_model(self, request, obj, form, change):
        if not change:
            if not form.cleaned_data.get("secret_key"):
                from .models import new_secret_key

                obj.secret_key = new_secret_key()
            super().save_model(request, obj, form, change)
            # The admin is where a curator hands keys to a client, so the secret is shown once.
            messages.success(request, f"S3 credentials of {obj.user.get_username()}: access_key={obj.access_key} "
                             f"secret_key={obj.secret_key}")
            return
        super().save_model(request, obj, form, change)


@admin.register(MultipartUpload)
class MultipartUploadAdmin(admin.ModelAdmin):
    list_display = ("key", "upload_id", "owner", "created")
    search_fields = ("key",)
    readonly_fields = ("key", "upload_id", "owner", "metadata", "content_type", "headers", "checksum_algorithm",
                       "checksum_type", "created")

    def has_add_permission(self, request):
        return False

    def delete_model(self, request, obj):
        blobs = list(obj.parts.values_list("blob", flat=True))
        super().delete_model(request, obj)
        for name in blobs:
            content.delete_content(name)

    def delete_queryset(self, request, queryset):
        for upload in queryset:
            self.delete_model(request, upload)
