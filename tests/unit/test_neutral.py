"""The neutral request, capability checks, the catalogue and the job-view reading."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vidgate.domain.capabilities import Capabilities, unsupported
from vidgate.domain.catalogue import Catalogue, ModelEntry, Target
from vidgate.domain.errors import ModelRetired, UnknownModel, UnsupportedParameter
from vidgate.domain.request import (
    ImageInput,
    ImageRole,
    VideoParams,
    duration_text,
    neutral_to_size,
    seconds_to_duration,
    size_to_neutral,
)
from vidgate.domain.status import TaskStatus
from vidgate.engine.observe import ESTIMATED, estimate_progress, observation_of
from vidgate.providers.base import (
    Binding,
    ErrorCategory,
    JobError,
    JobStatus,
    JobView,
    Usage,
)

NOW = datetime(2026, 11, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ("size", "neutral"),
    [
        ("1280x720", ("16:9", "720p")),
        ("720x1280", ("9:16", "720p")),
        ("1792x1024", ("16:9", "1080p")),
        ("1024x1792", ("9:16", "1080p")),
        ("1440x1440", ("1:1", "1440p")),
        ("2560x1080", ("21:9", "1080p")),
        ("big", (None, None)),
        ("0x720", (None, None)),
        (None, (None, None)),
    ],
)
def test_sizes_translate_to_aspect_ratio_and_resolution(
    size: str | None, neutral: tuple[str | None, str | None]
) -> None:
    assert size_to_neutral(size) == neutral


def test_neutral_back_to_a_sora_size() -> None:
    assert neutral_to_size("16:9", "720p") == "1280x720"
    assert neutral_to_size("9:16", None) == "720x1280"
    assert neutral_to_size("4:3", "720p") is None


def test_seconds_and_durations() -> None:
    assert seconds_to_duration("8") == 8.0
    assert seconds_to_duration("2.5") == 2.5
    assert seconds_to_duration("nan") is None
    assert seconds_to_duration("-1") is None
    assert duration_text(8.0) == "8" and duration_text(2.5) == "2.5"


def test_params_round_trip_through_their_stored_form() -> None:
    params = VideoParams(
        duration_seconds=5,
        aspect_ratio="9:16",
        resolution="1080p",
        negative_prompt="blur",
        seed=7,
        audio=True,
        images=(
            ImageInput(url="https://a/1.png"),
            ImageInput(url="https://a/2.png", role=ImageRole.LAST_FRAME),
        ),
        extra={"camera": {"pan": 1}},
    )
    stored = params.to_json()
    assert stored["images"][1] == {"url": "https://a/2.png", "role": "last_frame"}
    assert VideoParams.from_json(stored) == params
    assert VideoParams().to_json() == {}
    assert VideoParams.from_json(None) == VideoParams()


KLING_LIKE = Capabilities(
    durations=(5.0, 10.0),
    aspect_ratios=("16:9", "9:16", "1:1"),
    resolutions=("720p", "1080p"),
    image_roles=(ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME),
    max_images=2,
    audio=False,
    seed=False,
)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (VideoParams(), None),
        (VideoParams(duration_seconds=5), None),
        (VideoParams(duration_seconds=6), "durationSeconds"),
        (VideoParams(aspect_ratio="21:9"), "aspectRatio"),
        (VideoParams(resolution="4k"), "resolution"),
        (VideoParams(images=(ImageInput(url="u", role=ImageRole.REFERENCE),)), "images.role"),
        (VideoParams(images=tuple(ImageInput(url=f"u{i}") for i in range(3))), "images"),
        (VideoParams(audio=True), "audio"),
        (VideoParams(audio=False), None),
        (VideoParams(seed=1), "seed"),
        (VideoParams(negative_prompt="x"), None),
    ],
)
def test_capability_check_names_the_first_unsupported_field(
    params: VideoParams, field: str | None
) -> None:
    found = unsupported(params, KLING_LIKE)
    assert (found.field if found else None) == field


def test_a_duration_range() -> None:
    caps = Capabilities(duration_range=(2.0, 15.0))
    assert unsupported(VideoParams(duration_seconds=15), caps) is None
    refused = unsupported(VideoParams(duration_seconds=16), caps)
    assert refused is not None and refused.supported == {"min": 2.0, "max": 15.0}


def test_capabilities_from_the_toml_form() -> None:
    caps = Capabilities.from_json(
        {"durations": [4, 8], "aspect_ratios": ["16:9"], "image_roles": ["reference"]}
    )
    assert caps.durations == (4.0, 8.0)
    assert caps.image_roles == (ImageRole.REFERENCE,)
    assert Capabilities.from_json(caps.to_json()) == caps


def catalogue() -> Catalogue:
    cheap = Target(provider="a", protocol="kling", model="k1", capabilities=KLING_LIKE)
    wide = Target(
        provider="b",
        protocol="seedance",
        model="s1",
        capabilities=Capabilities(duration_range=(2, 12)),
    )
    return Catalogue(
        [
            ModelEntry(name="video", targets=(cheap, wide)),
            ModelEntry(
                name="old",
                targets=(cheap,),
                retires_at=datetime(2026, 1, 1, tzinfo=UTC),
                replaced_by="video",
            ),
            ModelEntry(
                name="future", targets=(cheap,), retires_at=datetime(2027, 1, 1, tzinfo=UTC)
            ),
        ]
    )


def test_catalogue_refuses_unknown_and_retired_models_and_names_the_replacement() -> None:
    with pytest.raises(UnknownModel) as unknown:
        catalogue().check("nope", VideoParams(), now=NOW)
    assert unknown.value.details["supported"] == ["video", "old", "future"]
    with pytest.raises(ModelRetired) as retired:
        catalogue().check("old", VideoParams(), now=NOW)
    assert retired.value.details["replacedBy"] == "video"
    assert "Use 'video' instead" in retired.value.message
    assert catalogue().check("future", VideoParams(), now=NOW).name == "future"


def test_catalogue_accepts_what_any_provider_can_do_and_routes_only_to_those() -> None:
    book = catalogue()
    six = VideoParams(duration_seconds=6)
    assert book.check("video", six, now=NOW).name == "video"  # b can
    assert not book.can("video", "a", six) and book.can("video", "b", six)
    with pytest.raises(UnsupportedParameter) as refused:
        book.check("video", VideoParams(duration_seconds=20), now=NOW, field_names={})
    assert refused.value.details["field"] == "durationSeconds"
    assert refused.value.details["supported"] == [5.0, 10.0]  # the first provider's table
    with pytest.raises(UnsupportedParameter) as renamed:
        book.check(
            "video",
            VideoParams(duration_seconds=20),
            now=NOW,
            field_names={"durationSeconds": "seconds"},
        )
    assert renamed.value.details["field"] == "seconds"


def view(**fields: object) -> JobView:
    return JobView(external_id="job-1", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "task_status"),
    [
        (JobStatus.QUEUED, TaskStatus.QUEUED),
        (JobStatus.IN_PROGRESS, TaskStatus.PROCESSING),
        (JobStatus.COMPLETED, TaskStatus.COMPLETED),
        (JobStatus.FAILED, TaskStatus.FAILED),
        (JobStatus.CANCELLED, TaskStatus.FAILED),
        (JobStatus.EXPIRED, TaskStatus.EXPIRED),
        (None, None),
    ],
)
def test_job_statuses_read_as_task_statuses(
    status: JobStatus | None, task_status: TaskStatus | None
) -> None:
    assert observation_of(view(status=status, progress=5), since_submit=1, expected=60).status is (
        task_status
    )


def test_no_progress_reported_means_an_estimate_that_says_so() -> None:
    seen = observation_of(view(status=JobStatus.IN_PROGRESS), since_submit=60, expected=60)
    assert seen.progress == 62 and seen.message == ESTIMATED
    reported = observation_of(
        view(status=JobStatus.IN_PROGRESS, progress=40), since_submit=60, expected=60
    )
    assert reported.progress == 40 and reported.message is None
    assert estimate_progress(0, 60) == 0
    assert estimate_progress(10_000, 60) == 99
    ages = [estimate_progress(t, 60) for t in range(0, 600, 7)]
    assert ages == sorted(ages) and max(ages) < 100


def test_job_errors_keep_the_upstream_code_and_decide_retries_by_category() -> None:
    policy = JobError(code="1301", message="no", category=ErrorCategory.CONTENT_POLICY)
    broke = JobError(code="5000", message="oops", category=ErrorCategory.GENERATION_FAILED)
    assert not policy.worth_retrying and broke.worth_retrying
    assert not JobError(
        code="x", message="y", category=ErrorCategory.GENERATION_FAILED, retryable=False
    ).worth_retrying
    seen = observation_of(view(status=JobStatus.FAILED, error=policy), since_submit=1, expected=1)
    assert seen.error is not None and (seen.error.code, seen.error.message) == ("1301", "no")


def test_binding_and_usage_json() -> None:
    binding = Binding(
        protocol="kling",
        provider="k",
        model="kling-v2-1",
        base_url="https://api-singapore.klingai.com",
        credential="access_key=env:AK;secret_key=env:SK",
        poll_handle="text2video",
    )
    assert Binding.from_json(binding.to_json()) == binding
    assert Usage(seconds=5, tokens=None, cost=0.2).to_json() == {"seconds": 5, "cost": 0.2}
