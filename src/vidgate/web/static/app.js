// vidgate test page: create tasks, watch both IDs and progress live, play the result.
// Plain ES2020, no build step, no inline code (works under CSP default-src 'self').
"use strict";

(() => {
  const LIST_LIMIT = 20;
  const PING_EVERY_MS = 20000;
  const PONG_TIMEOUT_MS = 10000;
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const LOG_MAX = 100;
  const TOKEN_KEY = "vidgate.token";
  const POLICY_VIOLATION = 1008; // WebSocket close code for a missing or refused credential

  // Pushed messages use upstream-style words; REST uses the task's own (API.md, "Status").
  const FROM_PUSHED = {
    queued: "QUEUED",
    in_progress: "PROCESSING",
    completed: "COMPLETED",
    failed: "FAILED",
    cancelled: "CANCELLED",
  };
  const STATUS_FOR_TYPE = {
    taskCompleted: "COMPLETED",
    taskFailed: "FAILED",
    taskCancelled: "CANCELLED",
  };
  const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
  const ACTIVE = new Set(["QUEUED", "PROCESSING"]);
  const DEFAULT_MESSAGE = {
    QUEUED: "Waiting for the upstream to accept the task…",
    PROCESSING: "Generating video…",
    COMPLETED: "Video ready.",
    FAILED: "The task failed.",
    CANCELLED: "The task was cancelled.",
  };

  const $ = (id) => document.getElementById(id);

  const state = {
    tasks: new Map(), // videoId -> view of the task (REST fields + live fields from pushes)
    order: [], // videoIds shown in the recent-tasks list, newest first
    rows: new Map(), // videoId -> <li>
    currentId: null,
    nextCursor: null,
    // videoId -> the newest eventId received: a resubscribe after a drop asks for what came
    // after it (afterEventId), so nothing is missed or shown twice (docs/API.md, "Resume").
    lastEventId: new Map(),
  };

  function noteEventId(videoId, eventId) {
    if (!Number.isSafeInteger(eventId) || eventId < 0) return;
    const known = state.lastEventId.get(videoId);
    if (known === undefined || eventId > known) state.lastEventId.set(videoId, eventId);
  }

  function subscribeMessage(videoId) {
    const message = { type: "subscribe", videoId };
    const after = state.lastEventId.get(videoId);
    if (after !== undefined) message.afterEventId = after;
    return message;
  }

  // ---------------------------------------------------------------- helpers

  function normStatus(word) {
    if (!word) return null;
    const text = String(word);
    return FROM_PUSHED[text.toLowerCase()] || text.toUpperCase();
  }

  // The seed's console form: video_e7a620c7-2829-... -> "video_e7a620c7-..."
  function shortId(id) {
    if (!id) return "pending";
    const dash = id.indexOf("-");
    if (dash > 0 && dash <= 24 && dash < id.length - 1) return id.slice(0, dash) + "-...";
    return id.length > 18 ? id.slice(0, 18) + "..." : id;
  }

  function clampProgress(value) {
    const n = Number(value);
    if (!Number.isFinite(n)) return 0;
    return Math.max(0, Math.min(100, Math.round(n)));
  }

  function parseTime(iso) {
    const ms = iso ? Date.parse(iso) : NaN;
    return Number.isFinite(ms) ? ms : null;
  }

  function formatTime(iso) {
    const ms = parseTime(iso);
    return ms === null ? "—" : new Date(ms).toLocaleString();
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // ---------------------------------------------------------------- credentials

  // In apikey and jwt modes every call carries a bearer token. The page keeps the one the
  // user pasted for this tab only; in auth mode none nothing is needed and nothing is sent.
  const auth = {
    token() {
      try {
        return sessionStorage.getItem(TOKEN_KEY) || "";
      } catch (_err) {
        return ""; // storage disabled: the page still works without credentials
      }
    },

    store(token) {
      try {
        if (token) sessionStorage.setItem(TOKEN_KEY, token);
        else sessionStorage.removeItem(TOKEN_KEY);
      } catch (_err) {
        // storage disabled: nothing to keep
      }
      $("auth-needed").hidden = true;
      $("token").value = "";
      this.render(null);
    },

    render(needed) {
      const has = Boolean(this.token());
      const mode = needed ? "needed" : has ? "set" : "none";
      const status = $("auth-status");
      status.dataset.auth = mode;
      status.textContent = has ? "a key is set for this tab" : "no key set";
      const toggle = $("auth-toggle");
      toggle.dataset.auth = mode;
      toggle.textContent = needed ? "API key needed" : has ? "API key ✓" : "API key";
      $("token-forget").disabled = !has;
    },

    show(open) {
      const panel = $("auth-panel");
      panel.hidden = !open;
      $("auth-toggle").setAttribute("aria-expanded", String(open));
      if (open) $("token").focus();
    },

    // vidgate answered 401 (REST) or closed the socket for policy: say so where the fix is.
    needed(code, message) {
      const box = $("auth-needed");
      const had = Boolean(this.token());
      box.replaceChildren(
        el("div", "alert-head", had ? "Credentials refused" : "Credentials needed"),
        el("div", "alert-message", `${code}: ${message}`),
        el(
          "div",
          "alert-hint",
          had
            ? "The key or token of this tab was not accepted; paste another one."
            : "This vidgate requires an API key or token: paste one below.",
        ),
      );
      box.hidden = false;
      this.render(true);
      this.show(true);
    },
  };

  // ---------------------------------------------------------------- REST

  class ApiError extends Error {
    constructor(code, message, details, httpStatus) {
      super(message);
      this.code = code;
      this.details = details || null;
      this.httpStatus = httpStatus || 0;
    }
  }

  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json" } };
    const token = auth.token();
    if (token) init.headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError("NETWORK_ERROR", `Cannot reach vidgate (${err.message}).`);
    }
    let json = null;
    try {
      json = await response.json();
    } catch (_err) {
      json = null;
    }
    if (json && json.success === true) return json.data;
    if (json && json.success === false && json.error) {
      const e = json.error;
      if (response.status === 401) auth.needed(e.code || "UNAUTHORIZED", e.message || "Credentials required.");
      throw new ApiError(e.code || "ERROR", e.message || "Request refused.", e.details, response.status);
    }
    if (response.status === 401) auth.needed("UNAUTHORIZED", "Credentials required.");
    const detail = json && typeof json.detail === "string" ? json.detail : null;
    throw new ApiError(
      `HTTP_${response.status}`,
      detail || `Unexpected response from vidgate (HTTP ${response.status}).`,
      null,
      response.status,
    );
  }

  function showError(err, context) {
    const box = $("error");
    box.replaceChildren();
    const code = err instanceof ApiError ? err.code : "CLIENT_ERROR";
    const head = el("div", "alert-head");
    if (context) head.append(el("span", "alert-context", context));
    head.append(el("code", "alert-code", code));
    box.append(head, el("div", "alert-message", err.message || String(err)));
    if (err instanceof ApiError && err.httpStatus === 401) {
      box.append(el("div", "alert-hint", "Paste an API key or token under Credentials, above."));
    }
    const details = err instanceof ApiError ? err.details : null;
    if (details && typeof details === "object" && Object.keys(details).length > 0) {
      box.append(el("pre", "alert-details", JSON.stringify(details, null, 2)));
    }
    box.hidden = false;
  }

  function hideError() {
    const box = $("error");
    box.hidden = true;
    box.replaceChildren();
  }

  // ---------------------------------------------------------------- task state

  // REST answers and pushed messages can cross on the wire. Pushes arrive in order and are
  // authoritative; a REST object older than the last push we applied only contributes its
  // descriptive fields (prompt, attempts, ...), never the live ones.
  function applyRest(task) {
    const prev = state.tasks.get(task.videoId);
    const live = {
      status: normStatus(task.status),
      progress: clampProgress(task.progress),
      externalVideoId: task.externalVideoId || (task.metadata && task.metadata.externalTaskId) || null,
      videoUrl: task.videoUrl || null,
      error: task.error || null,
    };
    const updated = parseTime(task.updatedAt);
    const stale =
      prev && prev.lastPushMs !== null && (updated === null || updated < prev.lastPushMs);
    const next = Object.assign({ message: null, lastPushMs: null }, prev || {}, {
      videoId: task.videoId,
      prompt: task.prompt,
      model: task.model,
      seconds: task.seconds,
      size: task.size,
      createdAt: task.createdAt,
      attempts: task.attempts || [],
      raw: task,
    });
    if (!stale) {
      if (prev && prev.status !== live.status) next.message = null;
      Object.assign(next, live);
    }
    state.tasks.set(task.videoId, next);
    return next;
  }

  function applyPush(type, payload, timestamp) {
    if (!payload || !payload.videoId) return null;
    const prev = state.tasks.get(payload.videoId) || { videoId: payload.videoId, lastPushMs: null };
    const status = normStatus(payload.status) || STATUS_FOR_TYPE[type] || prev.status || null;
    const next = Object.assign({}, prev, {
      status,
      progress: clampProgress(payload.progress),
      externalVideoId: payload.externalVideoId || null,
      message: payload.message || null,
      videoUrl: status === "COMPLETED" ? (payload.result && payload.result.videoUrl) || prev.videoUrl || null : null,
      error: status === "FAILED" || status === "CANCELLED" ? payload.error || null : null,
      lastPushMs: Math.max(prev.lastPushMs || 0, Number(timestamp) || Date.now()),
    });
    state.tasks.set(payload.videoId, next);
    return next;
  }

  // ---------------------------------------------------------------- rendering

  function renderCurrent() {
    const task = state.currentId ? state.tasks.get(state.currentId) : null;
    renderSnippet();
    $("no-task").hidden = Boolean(task);
    $("task-detail").hidden = !task;
    const badge = $("status");
    if (!task) {
      badge.textContent = "—";
      badge.dataset.status = "";
      return;
    }
    const status = task.status || "";
    badge.textContent = status || "…";
    badge.dataset.status = status;

    $("video-id").textContent = task.videoId;
    const ext = $("external-video-id");
    ext.textContent = task.externalVideoId || "pending";
    ext.classList.toggle("pending", !task.externalVideoId);

    const progress = $("progress");
    progress.value = task.progress || 0;
    progress.textContent = `${task.progress || 0}%`;
    progress.dataset.status = status;
    $("progress-label").textContent = `${task.progress || 0}%`;
    // A failure's message is already in the error box below; do not say it twice.
    const repeatsError = task.error && task.message === task.error.message;
    $("message").textContent = (!repeatsError && task.message) || DEFAULT_MESSAGE[status] || "";

    const errorBox = $("task-error");
    if (task.error && (status === "FAILED" || status === "CANCELLED")) {
      $("task-error-code").textContent = task.error.code || "ERROR";
      $("task-error-message").textContent = task.error.message || "";
      errorBox.hidden = false;
    } else {
      errorBox.hidden = true;
    }

    renderPlayer(status === "COMPLETED" ? task.videoUrl : null);

    $("fact-prompt").textContent = task.prompt || "—";
    $("fact-model").textContent = task.model || "—";
    $("fact-format").textContent = task.seconds ? `${task.seconds} s · ${task.size}` : "—";
    $("fact-created").textContent = formatTime(task.createdAt);
    $("fact-attempts").textContent = describeAttempts(task.attempts);

    $("cancel").disabled = !ACTIVE.has(status);
    $("retry").disabled = !(status === "FAILED" || status === "CANCELLED");
    const content = $("content-link");
    content.hidden = status !== "COMPLETED";
    if (content.hidden) $("content-json").hidden = true;
    content.href = `/api/video/tasks/${encodeURIComponent(task.videoId)}/content`;

    $("task-json").textContent = task.raw ? JSON.stringify(task.raw, null, 2) : "";
  }

  // Copy-paste equivalents of what the page does, for the task on screen.
  function renderSnippet() {
    const origin = window.location.origin;
    const wsOrigin = origin.replace(/^http/, "ws");
    const id = state.currentId || "VIDEO_ID";
    // The token itself never goes on screen: the commands read it from the environment.
    const bearer = auth.token() ? ` -H "Authorization: Bearer $VIDGATE_TOKEN"` : "";
    const wsToken = auth.token() ? "&token=$VIDGATE_TOKEN" : "";
    $("snippet").textContent = [
      `curl -s -X POST ${origin}/api/video/tasks${bearer} \\`,
      `  -H 'Content-Type: application/json' \\`,
      `  -d '{"prompt": "a red fox running through snow"}'`,
      `curl -s ${origin}/api/video/tasks/${id}${bearer}`,
      `# WebSocket ${wsOrigin}/ws?videoId=${id}${wsToken}`,
      `vidgate status ${id} --server ${origin}`,
    ].join("\n");
  }

  function describeAttempts(attempts) {
    if (!attempts || attempts.length === 0) return "—";
    return attempts
      .map((a) => `#${a.attempt} ${a.provider || "?"} ${shortId(a.externalVideoId)} ${a.status || ""}`)
      .join(" · ");
  }

  function renderPlayer(url) {
    const player = $("player");
    const wrap = $("player-wrap");
    if (url) {
      if (player.getAttribute("src") !== url) {
        player.src = url;
        const link = $("video-url");
        link.href = url;
        link.textContent = url;
      }
      wrap.hidden = false;
    } else {
      if (player.hasAttribute("src")) {
        player.pause();
        player.removeAttribute("src");
        player.load();
      }
      wrap.hidden = true;
    }
  }

  function renderRow(videoId) {
    const task = state.tasks.get(videoId);
    if (!task) return;
    let li = state.rows.get(videoId);
    if (!li) {
      li = el("li");
      const button = el("button", "task-row");
      button.type = "button";
      button.dataset.videoId = videoId;
      button.append(
        el("code", "c-vid"),
        el("code", "c-ext"),
        el("span", "badge c-status"),
        el("span", "c-progress"),
        el("span", "c-prompt"),
      );
      const bar = el("progress");
      bar.max = 100;
      button.querySelector(".c-progress").append(bar, el("span", "c-pct"));
      button.addEventListener("click", () => select(videoId));
      li.append(button);
      li.dataset.videoId = videoId;
      state.rows.set(videoId, li);
    }
    const button = li.firstChild;
    const vid = button.querySelector(".c-vid");
    vid.textContent = shortId(task.videoId);
    vid.title = task.videoId;
    const ext = button.querySelector(".c-ext");
    ext.textContent = shortId(task.externalVideoId);
    ext.title = task.externalVideoId || "not yet accepted by the upstream";
    ext.classList.toggle("pending", !task.externalVideoId);
    const badge = button.querySelector(".c-status");
    badge.textContent = task.status || "—";
    badge.dataset.status = task.status || "";
    const bar = button.querySelector("progress");
    bar.value = task.progress || 0;
    bar.dataset.status = task.status || "";
    button.querySelector(".c-pct").textContent = `${task.progress || 0}%`;
    const prompt = button.querySelector(".c-prompt");
    prompt.textContent = task.prompt || "";
    prompt.title = task.prompt || "";
    if (videoId === state.currentId) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }

  function renderList() {
    const list = $("task-list");
    const wanted = state.order.map((id) => {
      renderRow(id);
      return state.rows.get(id);
    });
    for (const [id, li] of state.rows) {
      if (!state.order.includes(id)) {
        li.remove();
        state.rows.delete(id);
      }
    }
    list.replaceChildren(...wanted);
    $("list-empty").hidden = state.order.length > 0;
    $("load-more").hidden = !state.nextCursor;
  }

  function render(videoId) {
    if (state.rows.has(videoId)) renderRow(videoId);
    if (videoId === state.currentId) renderCurrent();
  }

  // ---------------------------------------------------------------- event log

  // ``meta``: the videoId and eventId of a task message, shown and kept as data attributes.
  function log(kind, text, isError, meta) {
    const list = $("event-log");
    const item = el("li", isError ? "log-error" : "");
    const id = meta && Number.isSafeInteger(meta.eventId) ? `#${meta.eventId}` : "";
    item.append(
      el("time", "", new Date().toLocaleTimeString()),
      el("span", "log-kind", kind),
      el("span", "log-id", id),
      el("span", "", text),
    );
    if (meta) {
      item.dataset.videoId = meta.videoId || "";
      if (id) item.dataset.eventId = String(meta.eventId);
    }
    list.prepend(item);
    while (list.children.length > LOG_MAX) list.lastChild.remove();
  }

  function describePush(payload) {
    const parts = [`${shortId(payload.videoId)} (external: ${shortId(payload.externalVideoId)})`];
    if (payload.status) parts.push(payload.status);
    if (payload.progress !== undefined && payload.progress !== null) parts.push(`${payload.progress}%`);
    if (payload.message) parts.push(payload.message);
    if (payload.error) parts.push(`${payload.error.code}: ${payload.error.message}`);
    return parts.join(" · ");
  }

  // ---------------------------------------------------------------- WebSocket

  const ws = {
    socket: null,
    subs: new Set(),
    failures: 0,
    everOpened: false,
    refused: false, // closed for policy (credentials): wait for a new key, do not hammer
    pingTimer: null,
    pongTimer: null,
    retryTimer: null,

    url() {
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      const token = auth.token();
      const query = token ? `?token=${encodeURIComponent(token)}` : "";
      return `${scheme}//${window.location.host}/ws${query}`;
    },

    setState(name, label) {
      const badge = $("ws-state");
      badge.dataset.state = name;
      badge.textContent = label;
    },

    connect() {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      if (this.socket) return;
      this.setState("connecting", "connecting…");
      let socket;
      try {
        socket = new WebSocket(this.url());
      } catch (err) {
        this.scheduleReconnect();
        return;
      }
      this.socket = socket;
      socket.addEventListener("open", () => this.onOpen(socket));
      socket.addEventListener("message", (event) => this.onMessage(event));
      socket.addEventListener("close", (event) => this.onClose(socket, event));
    },

    onOpen(socket) {
      if (socket !== this.socket) return;
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.failures = 0;
      this.setState("live", "live");
      log("ws", reconnected ? "reconnected; resuming after the last event ids" : "connected");
      for (const id of this.subs) this.send(subscribeMessage(id));
      this.pingTimer = setInterval(() => this.ping(), PING_EVERY_MS);
      // Anything that changed while we were away: the replayed events (or, past the server's
      // retention, the subscribed snapshots) cover the tasks we follow; the list may also
      // have gained tasks created elsewhere.
      if (reconnected) loadList(false).catch(() => {});
    },

    onClose(socket, event) {
      if (socket !== this.socket) return;
      this.teardown();
      if (event.code === POLICY_VIOLATION) {
        this.refused = true;
        this.setState("down", "needs credentials");
        log("ws", `closed by vidgate: ${event.reason || "policy violation"}`, true);
        auth.needed("WEBSOCKET_REFUSED", event.reason || "The WebSocket was refused.");
        return;
      }
      this.scheduleReconnect();
    },

    // New credentials: drop the current socket and connect again at once with them.
    restart() {
      const socket = this.socket;
      this.teardown();
      this.refused = false;
      this.failures = 0;
      if (socket) {
        try {
          socket.close();
        } catch (_err) {
          // already closing
        }
      }
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      this.connect();
    },

    teardown() {
      clearInterval(this.pingTimer);
      clearTimeout(this.pongTimer);
      this.pingTimer = null;
      this.pongTimer = null;
      this.socket = null;
    },

    // A socket that stopped answering is dropped at once rather than waiting for TCP to notice.
    drop() {
      const socket = this.socket;
      this.teardown();
      if (socket) {
        try {
          socket.close();
        } catch (_err) {
          // already closing
        }
      }
      this.scheduleReconnect();
    },

    scheduleReconnect() {
      if (this.retryTimer) return;
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.failures);
      const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
      this.failures += 1;
      this.setState("down", `reconnecting in ${Math.ceil(delay / 1000)} s`);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.connect();
      }, delay);
    },

    reconnectNow() {
      if (this.socket || this.refused) return;
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      this.connect();
    },

    ping() {
      if (!this.send({ type: "ping" })) return;
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => {
        log("ws", "no pong within 10 s; reconnecting", true);
        this.drop();
      }, PONG_TIMEOUT_MS);
    },

    send(message) {
      if (this.socket && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify(message));
        return true;
      }
      return false;
    },

    subscribe(videoId) {
      if (this.subs.has(videoId)) return;
      this.subs.add(videoId);
      this.send(subscribeMessage(videoId));
    },

    unsubscribe(videoId) {
      if (!this.subs.delete(videoId)) return;
      this.send({ type: "unsubscribe", videoId });
    },

    onMessage(event) {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_err) {
        log("ws", "unreadable message ignored", true);
        return;
      }
      const payload = message.payload || {};
      switch (message.type) {
        case "pong":
          clearTimeout(this.pongTimer);
          this.pongTimer = null;
          return;
        case "error":
          log("error", `${payload.code || "ERROR"}: ${payload.message || ""}`, true);
          return;
        case "subscribed":
        case "taskProgress":
        case "taskCompleted":
        case "taskFailed":
        case "taskCancelled":
          onTaskMessage(message, payload);
          return;
        default:
          // Unknown types are ignored: the server may add messages without breaking clients.
          return;
      }
    },
  };

  function onTaskMessage(message, payload) {
    const type = message.type;
    const prev = state.tasks.get(payload.videoId);
    const task = applyPush(type, payload, message.timestamp);
    if (!task) return;
    noteEventId(task.videoId, message.eventId);
    let text = describePush(payload);
    if (message.resumed === true) text += " · resumed";
    if (message.resumed === false) text += ` · snapshot (${message.reason || "events expired"})`;
    log(type, text, false, { videoId: task.videoId, eventId: message.eventId });
    render(task.videoId);
    // On a terminal change, fetch the full object once (attempts, completedAt, raw JSON).
    const becameTerminal = TERMINAL.has(task.status) && (!prev || prev.status !== task.status);
    if (becameTerminal && task.videoId === state.currentId) refreshTask(task.videoId);
  }

  // ---------------------------------------------------------------- actions

  async function refreshTask(videoId) {
    try {
      const task = await api("GET", `/api/video/tasks/${encodeURIComponent(videoId)}`);
      applyRest(task);
      render(videoId);
    } catch (err) {
      if (videoId === state.currentId) showError(err, "Loading task");
    }
  }

  function syncSubscriptions() {
    const wanted = new Set(state.order.filter((id) => {
      const task = state.tasks.get(id);
      return task && !TERMINAL.has(task.status);
    }));
    if (state.currentId) wanted.add(state.currentId);
    for (const id of [...ws.subs]) if (!wanted.has(id)) ws.unsubscribe(id);
    for (const id of wanted) ws.subscribe(id);
  }

  function select(videoId) {
    const previous = state.currentId;
    state.currentId = videoId;
    if (previous !== videoId) $("content-json").hidden = true;
    if (window.location.hash !== `#${videoId}`) {
      window.history.replaceState(null, "", `#${videoId}`);
    }
    if (previous && state.rows.has(previous)) renderRow(previous);
    if (state.rows.has(videoId)) renderRow(videoId);
    if (!state.tasks.has(videoId)) state.tasks.set(videoId, { videoId, lastPushMs: null, status: null, progress: 0 });
    renderCurrent();
    syncSubscriptions();
    refreshTask(videoId);
  }

  async function createTask(event) {
    event.preventDefault();
    hideError();
    const button = $("create");
    button.disabled = true;
    button.textContent = "Creating…";
    const body = { prompt: $("prompt").value, seconds: $("seconds").value, size: $("size").value };
    const model = $("model").value.trim();
    if (model) body.model = model;
    try {
      const task = await api("POST", "/api/video/tasks", body);
      applyRest(task);
      state.order = [task.videoId, ...state.order.filter((id) => id !== task.videoId)];
      renderList();
      select(task.videoId);
    } catch (err) {
      showError(err, "Create refused");
    } finally {
      button.disabled = false;
      button.textContent = "Create";
    }
  }

  async function taskAction(action) {
    const videoId = state.currentId;
    if (!videoId) return;
    hideError();
    const button = $(action);
    button.disabled = true;
    try {
      const task = await api("POST", `/api/video/tasks/${encodeURIComponent(videoId)}/${action}`);
      applyRest(task);
      render(videoId);
      syncSubscriptions();
    } catch (err) {
      showError(err, action === "cancel" ? "Cancel refused" : "Retry refused");
      renderCurrent();
    }
  }

  async function loadList(append) {
    const params = new URLSearchParams({ limit: String(LIST_LIMIT) });
    const status = $("status-filter").value;
    if (status) params.set("status", status);
    if (append && state.nextCursor) params.set("cursor", state.nextCursor);
    const refresh = $("refresh");
    refresh.disabled = true;
    try {
      const data = await api("GET", `/api/video/tasks?${params}`);
      const items = data.items || [];
      for (const task of items) applyRest(task);
      const ids = items.map((t) => t.videoId);
      state.order = append ? [...state.order, ...ids.filter((id) => !state.order.includes(id))] : ids;
      state.nextCursor = data.nextCursor || null;
      renderList();
      syncSubscriptions();
      if (state.currentId) renderCurrent();
    } catch (err) {
      showError(err, "Loading tasks");
    } finally {
      refresh.disabled = false;
    }
  }

  async function copyId(targetId, button) {
    const node = $(targetId);
    const text = node.textContent;
    if (!text || text === "pending" || text === "—") return;
    const original = button.textContent;
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch (_err) {
      // No clipboard permission (e.g. plain http on a LAN address): select it for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents(node);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      button.textContent = "Selected";
    }
    setTimeout(() => {
      button.textContent = original;
    }, 1200);
  }

  // A plain link cannot carry the Authorization header: with a key set, fetch the JSON here.
  async function showContent(event) {
    if (!auth.token() || !state.currentId) return;
    event.preventDefault();
    const box = $("content-json");
    try {
      const content = await api("GET", `/api/video/tasks/${encodeURIComponent(state.currentId)}/content`);
      box.textContent = JSON.stringify(content, null, 2);
      box.hidden = false;
    } catch (err) {
      showError(err, "Loading content");
    }
  }

  function onTokenSubmit(event) {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) {
      $("token").focus();
      return;
    }
    auth.store(token);
    auth.show(false);
    hideError();
    renderSnippet();
    ws.restart();
    loadList(false);
    if (state.currentId) refreshTask(state.currentId);
  }

  function onTokenForget() {
    auth.store("");
    renderSnippet();
    ws.restart();
  }

  function selectFromHash() {
    const id = decodeURIComponent(window.location.hash.slice(1));
    if (/^video_[\w-]+$/.test(id) && id !== state.currentId) select(id);
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    $("create-form").addEventListener("submit", createTask);
    $("auth-form").addEventListener("submit", onTokenSubmit);
    $("token-forget").addEventListener("click", onTokenForget);
    $("auth-toggle").addEventListener("click", () => auth.show($("auth-panel").hidden));
    $("content-link").addEventListener("click", showContent);
    $("prompt").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        $("create-form").requestSubmit();
      }
    });
    $("cancel").addEventListener("click", () => taskAction("cancel"));
    $("retry").addEventListener("click", () => taskAction("retry"));
    $("refresh").addEventListener("click", () => loadList(false));
    $("load-more").addEventListener("click", () => loadList(true));
    $("status-filter").addEventListener("change", () => loadList(false));
    $("clear-log").addEventListener("click", () => $("event-log").replaceChildren());
    for (const button of document.querySelectorAll("button.copy")) {
      button.addEventListener("click", () => copyId(button.dataset.copy, button));
    }
    window.addEventListener("hashchange", selectFromHash);
    window.addEventListener("online", () => ws.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") ws.reconnectNow();
    });

    auth.render(false);
    renderSnippet();
    ws.connect();
    loadList(false);
    selectFromHash();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
