def test_settings_load(settings):
    assert settings.ISTORE_MAX_SELF_DEPTH == 8, "default ISTORE_MAX_SELF_DEPTH should be 8"
