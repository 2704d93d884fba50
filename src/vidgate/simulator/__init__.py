"""A standalone upstream video API speaking OpenAI's `/v1/videos` convention.

Used by vidgate's tests, benchmarks and demo mode. It imports nothing from vidgate outside this
package. Entry points: `app.create_app(SimConfig)`, `server.start` (in the current event loop),
`server.running_in_thread` (sync tests), `server.run` and the `vidgate simulator` command.

API (under `SimConfig.prefix`, default `/v1`; bearer key enforced when `api_key` is set):

    POST   /videos                    JSON or multipart (bracketed fields, file upload);
                                      honours Idempotency-Key (same key -> same job)
    GET    /videos                    after, limit (0..100, default 20), order (asc|desc)
    GET    /videos/{id}               the video object; `openai-poll-after-ms` while running
    DELETE /videos/{id}               any status (there is no cancel endpoint)
    POST   /videos/{id}/remix         {prompt}; only completed videos can be remixed
    GET    /videos/{id}/content       variant=video (mp4) | thumbnail (webp) | spritesheet
                                      (jpeg); Range requests answered 206

Job clock: queued for the first 10% of `job_seconds`, then in_progress with progress rising
0..99, then completed (100). Content is 404 before completion and after `expires_at`.
Failing jobs fail halfway through; stuck jobs stay in_progress at 99.

Prompt triggers (deterministic, for tests): a prompt containing `[fail]` ends failed with
error code `moderation_blocked`; `[stuck]` never finishes.

With `url_field`, a completed job carries `"url": "/videos/{id}.mp4"`, a path at the origin
root whatever the prefix (the seed's upstream lives at /sora/v1 and answers that way). That
path serves the MP4 without auth or faults, with Range support, so a <video> can play it.

Faults (`SimConfig` rates, one roll per API request): 500, 503, 429 (with `Retry-After`
seconds and `retry-after-ms`; 503s carry them too when `retry_after_503_seconds` > 0), timeout
(hang `hang_seconds`, then answer normally), garbage (200 with a non-JSON body), hostile
(`GET /videos/{id}` only: a 200 with a corrupted job object, see `hostile.py`; the job itself is
unaffected); `latency_ms` delays every API request; `job_fail_rate` and `job_stuck_rate` decide
job outcomes at creation. `seed` makes the draws reproducible.

Client behaviour watched (`tracking.py`), per key (the job id for GET/DELETE /videos/{id}, the
Idempotency-Key for POST /videos): a request sent more than 50 ms before the Retry-After its key
was answered with expired counts in `retryAfterViolations`; a request arriving while another with
the same key is still being answered counts in `overlappingRequests`.

Control surface at the origin root, never behind the key or faults:

    GET  /_sim/stats    {"jobsCreated": 3, "requests": {"POST /videos": 4, ...},
                         "requestsTotal": 9,
                         "faultsInjected": {"error500": 0, "error503": 0, "error429": 1,
                                            "timeout": 0, "garbage": 0, "hostile": 2,
                                            "jobFail": 0, "jobStuck": 0},
                         "hostileVariants": {"missingStatus": 1, "notJson": 1, ...},
                         "retryAfterViolations": 0,
                         "retryAfterViolationSamples": [],   # {key, route, earlyBySeconds}
                         "overlappingRequests": 0,
                         "overlappingRequestSamples": [],    # {key, route, at}
                         "jobsByStatus": {"queued": 0, "in_progress": 1, "completed": 2,
                                          "failed": 0},
                         "jobsStored": 3, "since": 1767225600.0}
    POST /_sim/faults   JSON of SimConfig field names to change at runtime (the rates,
                        retry_after_seconds, retry_after_503_seconds, hang_seconds, latency_ms,
                        job_seconds); answers the new settings. GET answers the current ones.
    POST /_sim/reset    clears the counters (jobs stay); answers the fresh stats
    GET  /_sim/jobs/{id} the truth about a stored job, unaffected by faults: {"id",
                        "outcome": complete|fail|stuck, "status", "progress", "createdAt",
                        "finishesAt": exact unix seconds, null for a stuck job}

Request keys in `requests` are the method and route template without the prefix. Prompt
triggers count as jobFail / jobStuck faults too. Samples are capped at 20 each.
"""
