"""ListObjectsV2 and ListObjects: prefixes, delimiters, paging, encoding, owners; ListBuckets."""
import pytest

KEYS = ["a/1", "a/2", "a/b/3", "b", "c d+e", "z/"]


@pytest.fixture
def filled(s3, bucket):
    for key in KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x" if not key.endswith("/") else b"")
    return bucket


def keys_of(answer):
    return ([entry["Key"] for entry in answer.get("Contents", [])],
            [prefix["Prefix"] for prefix in answer.get("CommonPrefixes", [])])


def test_whole_bucket_in_key_order_without_the_buckets_own_item(s3, filled):
    assert keys_of(s3.list_objects_v2(Bucket=filled)) == (sorted(KEYS), []), "the listing is not every key in order"


def test_delimiter_folds_deeper_keys(s3, filled):
    assert keys_of(s3.list_objects_v2(Bucket=filled, Delimiter="/")) == (["b", "c d+e"], ["a/", "z/"])
    assert keys_of(s3.list_objects_v2(Bucket=filled, Prefix="a/", Delimiter="/")) == (["a/1", "a/2"], ["a/b/"])


def test_prefix_need_not_end_in_a_slash(s3, filled):
    assert keys_of(s3.list_objects_v2(Bucket=filled, Prefix="a/b"))[0] == ["a/b/3"]


@pytest.mark.parametrize("delimiter", [None, "/"])
def test_pages_of_one_visit_every_entry_once(s3, filled, delimiter):
    seen, token = [], None
    for _ in range(20):
        kwargs = {"Bucket": filled, "MaxKeys": 1, **({"Delimiter": delimiter} if delimiter else {})}
        if token:
            kwargs["ContinuationToken"] = token
        answer = s3.list_objects_v2(**kwargs)
        contents, prefixes = keys_of(answer)
        seen += contents + prefixes
        if not answer["IsTruncated"]:
            break
        token = answer["NextContinuationToken"]
    expected = sorted(KEYS) if delimiter is None else ["a/", "b", "c d+e", "z/"]
    assert seen == expected, f"pages of one gave {seen}"


def test_start_after(s3, filled):
    assert keys_of(s3.list_objects_v2(Bucket=filled, StartAfter="a/b/3"))[0] == ["b", "c d+e", "z/"]


def test_list_objects_v1_marker_and_next_marker(s3, filled):
    first = s3.list_objects(Bucket=filled, Delimiter="/", MaxKeys=2)
    assert keys_of(first) == (["b"], ["a/"]) and first["NextMarker"] == "b", first
    second = s3.list_objects(Bucket=filled, Delimiter="/", Marker=first["NextMarker"])
    assert keys_of(second) == (["c d+e"], ["z/"]), "the second V1 page does not follow NextMarker"


def test_encoding_type_url_encodes_keys(s3, filled):
    # botocore decodes only when it asked for the encoding itself; asked explicitly, the keys stay encoded.
    answer = s3.list_objects_v2(Bucket=filled, Prefix="c", EncodingType="url")
    assert keys_of(answer)[0] == ["c%20d%2Be"], "keys are not url-encoded with encoding-type=url"


def test_max_keys_zero_is_an_empty_page(s3, filled):
    answer = s3.list_objects_v2(Bucket=filled, MaxKeys=0)
    assert answer["KeyCount"] == 0 and not answer["IsTruncated"], answer


def test_sizes_and_etags_in_listings(s3, filled):
    entries = {entry["Key"]: entry for entry in s3.list_objects_v2(Bucket=filled)["Contents"]}
    assert entries["b"]["Size"] == 1 and entries["z/"]["Size"] == 0, "sizes are wrong"


def test_list_buckets_names_top_level_directories(s3, filled):
    assert filled in [entry["Name"] for entry in s3.list_buckets()["Buckets"]], "a new bucket is not listed"


def test_bad_continuation_token_is_invalid_argument(s3, filled):
    import botocore.exceptions

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        s3.list_objects_v2(Bucket=filled, ContinuationToken="bm90LWEta2V5")
    assert raised.value.response["Error"]["Code"] == "InvalidArgument"


def test_delete_bucket_refuses_while_keys_remain(s3, filled):
    import botocore.exceptions

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        s3.delete_bucket(Bucket=filled)
    assert raised.value.response["Error"]["Code"] == "BucketNotEmpty"
    s3.delete_objects(Bucket=filled, Delete={"Objects": [{"Key": key} for key in KEYS]})
    s3.delete_bucket(Bucket=filled)
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_bucket(Bucket=filled)


def test_list_object_versions_shows_each_object_as_its_null_version(s3, filled):
    answer = s3.list_object_versions(Bucket=filled, Prefix="a/")
    versions = [(entry["Key"], entry["VersionId"], entry["IsLatest"]) for entry in answer["Versions"]]
    assert versions == [("a/1", "null", True), ("a/2", "null", True), ("a/b/3", "null", True)], versions
