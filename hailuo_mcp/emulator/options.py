"""``EmulatorConfig``: every knob of one emulator instance, as a frozen value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hailuo_mcp.emulator.timing import TimingParams

OutputKey = Literal["video", "video_url", "download_url"]


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulated PiAPI behaves.

    Times in "emulated seconds" run ``speed`` times faster than real seconds.

    Attributes:
        api_key: the ``x-api-key`` to accept; ``None`` accepts any non-empty key.
        speed: emulated seconds per real second (100 makes a 77 s task take 0.77 s).
        seed: seed of the duration model's RNG (``None``: unpredictable).
        fixed_durations: ``(queue_s, generate_s)`` for every task, bypassing the model.
        envelope_code: ``code`` of successful envelopes, 200 or 0 (both appear in PiAPI's docs).
        output_key: key of the video URL in ``output`` ("video" for v2.3; older models used
            "video_url" / "download_url").
        webhook_attempts: deliveries tried per task, counting the first.
        webhook_interval_s: emulated seconds between webhook attempts.
        output_size: ``None`` serves the real sample MP4; ``N`` serves ``N`` synthetic bytes.
        check_images: fetch ``image_url`` and fail tasks whose image breaks the image rules
            (``image_rules``).
        timing: parameters of the duration model (see ``timing``): by default generation
            times spread as providers describe (log-normal, sigma 0.3 around the page's 76 s);
            ``TimingParams(generate_sigma=0.12)`` for the narrower spread of earlier releases.
        balance_usd: starting account balance; completed tasks consume it.
        enforce_balance: answer 402 to a create the available balance cannot cover.
        empty_output_before_completion: ``output`` is ``{key: ""}`` instead of ``null``
            until the task completes (a client must accept both).
        account_name: ``account_name`` reported by ``/account/info``.
        image_fetch_timeout_s: real seconds allowed to fetch an ``image_url``.
        webhook_timeout_s: real seconds allowed for one webhook delivery.
        log_limit: request-log entries kept (oldest dropped first; counters are exact).
    """

    api_key: str | None = None
    speed: float = 1.0
    seed: int | None = None
    fixed_durations: tuple[float, float] | None = None
    envelope_code: int = 200
    output_key: OutputKey = "video"
    webhook_attempts: int = 3
    webhook_interval_s: float = 5.0
    output_size: int | None = None
    check_images: bool = True
    timing: TimingParams = field(default_factory=TimingParams)
    balance_usd: float = 10_000.0
    enforce_balance: bool = True
    empty_output_before_completion: bool = False
    account_name: str = "emulator"
    image_fetch_timeout_s: float = 10.0
    webhook_timeout_s: float = 5.0
    log_limit: int = 100_000

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        if self.envelope_code not in (0, 200):
            raise ValueError("envelope_code must be 200 or 0")
        if self.output_key not in ("video", "video_url", "download_url"):
            raise ValueError("output_key must be video, video_url or download_url")
        if self.webhook_attempts < 1:
            raise ValueError("webhook_attempts must be at least 1")
        if self.webhook_interval_s < 0:
            raise ValueError("webhook_interval_s must not be negative")
        if self.output_size is not None and self.output_size < 0:
            raise ValueError("output_size must not be negative")
        if self.fixed_durations is not None and min(self.fixed_durations) < 0:
            raise ValueError("fixed_durations must not be negative")
        if self.log_limit < 1:
            raise ValueError("log_limit must be at least 1")
