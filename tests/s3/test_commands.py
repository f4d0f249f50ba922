"""create_s3_key and cleanup_multipart, as an operator runs them."""
import datetime

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from s3.models import Credential, MultipartUpload, UploadPart


@pytest.mark.django_db
def test_create_s3_key_prints_two_lines(capsys):
    User.objects.create_user("bob")
    call_command("create_s3_key", "bob")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("=", 1)[0] for line in lines] == ["access_key", "secret_key"], lines
    access = lines[0].split("=", 1)[1]
    assert Credential.objects.get(access_key=access).user.username == "bob", "the key is not bob's"


@pytest.mark.django_db
def test_create_s3_key_with_given_keys(capsys):
    User.objects.create_user("carol")
    call_command("create_s3_key", "carol", "--access-key", "CAROLKEY", "--secret-key", "carol-secret")
    assert capsys.readouterr().out.split() == ["access_key=CAROLKEY", "secret_key=carol-secret"]


@pytest.mark.django_db
def test_create_s3_key_for_a_missing_user_fails():
    with pytest.raises(CommandError, match="No user"):
        call_command("create_s3_key", "nobody")


@pytest.mark.django_db
def test_access_key_of_another_user_is_refused():
    User.objects.create_user("dan")
    User.objects.create_user("eve")
    call_command("create_s3_key", "dan", "--access-key", "SHARED", "--secret-key", "secret-1", stdout=None)
    with pytest.raises(CommandError, match="another user"):
        call_command("create_s3_key", "eve", "--access-key", "SHARED", "--secret-key", "secret-2")


@pytest.mark.django_db
def test_cleanup_multipart_deletes_old_uploads_and_their_parts(settings, tmp_path):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    old = MultipartUpload.objects.create(upload_id="old", key="/b/old")
    MultipartUpload.objects.create(upload_id="young", key="/b/young")
    MultipartUpload.objects.filter(pk=old.pk).update(created=timezone.now() - datetime.timedelta(days=8))
    blob = default_storage.save("multipart/aa/bb/part", ContentFile(b"part"))
    UploadPart.objects.create(upload=old, number=1, blob=blob, size=4, md5="0" * 32, sha256="0" * 64)
    call_command("cleanup_multipart", "--no-progress", stdout=None)
    assert list(MultipartUpload.objects.values_list("upload_id", flat=True)) == ["young"], "wrong uploads deleted"
    assert not default_storage.exists(blob), "the old upload's part blob was kept"
