"""Model aliases, URL resolution, Retry-After, and provider configuration."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from vidgate.config import ConfigError, ProviderConfig, load_settings
from vidgate.engine.urls import stream_url
from vidgate.providers.base import RateLimited
from vidgate.providers.cleanup import delete_job
from vidgate.providers.http import parse_retry_after, resolve_url
from vidgate.providers.openai import OpenAIVideosProvider
from vidgate.providers.registry import ProviderRegistry
from vidgate.testing import FakeProvider


@pytest.mark.parametrize(
    ("base", "url", "expected"),
    [
        ("http://45.8.22.95:8000/sora/v1", "/videos/x.mp4", "http://45.8.22.95:8000/videos/x.mp4"),
        (
            "http://45.8.22.95:8000/sora/v1",
            "/sora/videos/x.mp4",
            "http://45.8.22.95:8000/sora/videos/x.mp4",
        ),
        ("http://h:8000/sora/v1", "videos/x.mp4", "http://h:8000/sora/v1/videos/x.mp4"),
        ("http://h/v1", "https://cdn.example/x.mp4?sig=1", "https://cdn.example/x.mp4?sig=1"),
        ("http://h/v1", "//cdn.example/x.mp4", "http://cdn.example/x.mp4"),
        ("http://h/v1", "javascript:alert(1)", None),
        ("http://h/v1", "file:///etc/passwd", None),
        ("http://h/v1", "   ", None),
    ],
)
def test_resolve_url(base: str, url: str, expected: str | None) -> None:
    assert resolve_url(base, url) == expected


def test_stream_url() -> None:
    assert (
        stream_url("http://gw:8000/", "video_1") == "http://gw:8000/api/video/tasks/video_1/stream"
    )
    signed = stream_url("http://gw:8000", "video_1", access_token="abc")
    assert signed == "http://gw:8000/api/video/tasks/video_1/stream?access_token=abc"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(httpx.Headers(headers)) == seconds


async def test_model_alias_routing() -> None:
    main = OpenAIVideosProvider(
        ProviderConfig(name="main", base_url="http://a/v1", models={"sora_video2": "sora-2"})
    )
    pro = OpenAIVideosProvider(
        ProviderConfig(name="pro", base_url="http://b/v1", models={"sora_video2_pro": "sora-2-pro"})
    )
    registry = ProviderRegistry([main, pro])
    try:
        assert registry.candidates("sora_video2") == [main]
        assert main.upstream_model("sora_video2") == "sora-2"
        assert registry.candidates("sora_video2_pro") == [pro]
        assert pro.upstream_model("sora_video2_pro") == "sora-2-pro"
        assert registry.candidates("veo-3") == []
        assert registry.models() == ["sora_video2", "sora_video2_pro"]
        assert registry.catalogue.names() == ["sora_video2", "sora_video2_pro"]
    finally:
        await registry.aclose()


def test_providers_from_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "vidgate.toml"
    path.write_text(
        '[[providers]]\nname = "main"\nbase_url = "http://45.8.22.95:8000/sora/v1/"\n'
        'api_key_env = "SORA_KEY"\nmodels = { sora_video2 = "sora-2" }\n'
    )
    monkeypatch.setenv("VIDGATE_CONFIG", str(path))
    monkeypatch.setenv("SORA_KEY", "sk-secret")
    settings = load_settings()
    assert not settings.demo_mode
    (provider,) = settings.providers
    assert provider.base_url == "http://45.8.22.95:8000/sora/v1"
    assert provider.secret() == "sk-secret"
    assert "sk-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[providers]\n", "not valid TOML"),
        ('[[providers]]\nname = "x"\nbase_url = "ftp://h"\n', "invalid provider"),
        ('[[providers]]\nname = "x"\nbase_url = "http://h"\nsurprise = 1\n', "invalid provider"),
    ],
)
def test_bad_config_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, problem: str
) -> None:
    path = tmp_path / "vidgate.toml"
    path.write_text(text)
    monkeypatch.setenv("VIDGATE_CONFIG", str(path))
    with pytest.raises(ConfigError, match=problem):
        load_settings()


def test_missing_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDGATE_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


async def test_deleting_a_job_waits_as_long_as_the_upstream_asks() -> None:
    provider = FakeProvider()
    provider.fail_next("delete", RateLimited("fake: 429", retry_after=0.4))
    started = time.monotonic()
    assert await delete_job(provider, "video_x", video_id="video_1", pause=0.01) is True
    assert time.monotonic() - started >= 0.4
    assert len(provider.calls_to("delete")) == 2
