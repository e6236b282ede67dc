"""The shadow config in the registry: set, read by the serving poll, refused for an active version,
cleared on activation and on request; read through ``inference.api``."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions():
    from inference.registry import services as registry

    registry.model_version_register(algorithm="gbdt", version="gbdt-a", artifact_path="gbdt-a")
    registry.model_version_register(algorithm="gbdt", version="gbdt-b", artifact_path="gbdt-b")
    registry.model_version_activate(version="gbdt-a")
    return "gbdt-a", "gbdt-b"


def test_the_serving_poll_reads_the_shadow_set_through_the_api(versions):
    from inference import api
    from inference.registry.selectors import model_dir
    from inference.serving.wiring import registry_shadow_version

    assert api.shadow_setting_get() is None and registry_shadow_version() is None
    setting = api.shadow_setting_set(version="gbdt-b", sample_rate=0.25, top_k=3, actor="dashboard:staffer")
    assert (setting.version, setting.algorithm, setting.status, setting.sample_rate, setting.top_k) == (
        "gbdt-b",
        "gbdt",
        "candidate",
        0.25,
        3,
    )
    polled = registry_shadow_version()
    assert polled is not None
    assert (polled.version, polled.algorithm, polled.sample_rate, polled.top_k) == ("gbdt-b", "gbdt", 0.25, 3)
    assert polled.artifact_dir == model_dir() / "gbdt-b"


def test_setting_it_again_replaces_the_one_shadow(versions):
    from inference import api
    from inference.registry import services as registry
    from inference.registry.models import ShadowConfig

    registry.model_version_register(algorithm="neural", version="neural-c", artifact_path="neural-c")
    api.shadow_setting_set(version="gbdt-b", sample_rate=0.1)
    api.shadow_setting_set(version="neural-c", sample_rate=0.5, top_k=4)
    assert ShadowConfig.objects.count() == 1
    setting = api.shadow_setting_get()
    assert setting is not None and (setting.version, setting.sample_rate) == ("neural-c", 0.5)


@pytest.mark.parametrize(
    ("version", "rate", "top_k", "message"),
    [
        ("gbdt-a", 0.1, 5, "already serving"),
        ("gbdt-zzz", 0.1, 5, "no model version"),
        ("gbdt-b", 0.0, 5, "sample rate"),
        ("gbdt-b", 1.5, 5, "sample rate"),
        ("gbdt-b", 0.1, 0, "top-k"),
    ],
)
def test_bad_shadow_settings_are_refused(versions, version, rate, top_k, message):
    from inference import api
    from inference.registry.services import RegistryError

    with pytest.raises(RegistryError, match=message):
        api.shadow_setting_set(version=version, sample_rate=rate, top_k=top_k)
    assert api.shadow_setting_get() is None


def test_activating_the_shadow_version_ends_shadow_mode(versions):
    from inference import api
    from inference.registry import services as registry

    api.shadow_setting_set(version="gbdt-b", sample_rate=0.1)
    registry.model_version_activate(version="gbdt-b")
    assert api.shadow_setting_get() is None


def test_clear_says_which_version_stopped_shadowing(versions):
    from inference import api

    assert api.shadow_setting_clear() is None
    api.shadow_setting_set(version="gbdt-b", sample_rate=0.1)
    assert api.shadow_setting_clear() == "gbdt-b"
    assert api.shadow_setting_get() is None
