/*! up.js, the Usage Platform browser tracker: no dependencies, no cookies. See docs/sdks.md.
 * Batches go to <host>/api/v1/events/batch as text/plain JSON {api_key, events, people?,
 * accounts?}: no preflight, and what sendBeacon (no headers) can send on page hide. Events
 * carry uuids, so a batch sent twice is stored once; 429/5xx/network errors back off. */
(function (window, document) {
  "use strict";
  var existing = window.up; // a queue of calls made before the script ran, or up.js itself
  if (existing && !Array.isArray(existing) && existing.init) return; // loaded twice

  var MAX_BATCH = 100; // events per request (the API takes up to 1,000)
  var MAX_QUEUE = 1000; // while the platform is unreachable; the oldest go first
  var BEACON_BYTES = 60000; // sendBeacon and keepalive fetches are limited to 64 KB in flight
  var FLUSH_MS = 1000;
  var MAX_DELAY_MS = 60000;
  var PREFIX = "up_";

  var script = document.currentScript;
  var config = { key: null, endpoint: null, flushMs: FLUSH_MS };
  var queue = [];
  var inFlight = null; // the items of the request on its way
  var timer = 0;
  var failures = 0;
  var stopped = false;
  var lastPath = null;

  // sessionStorage: one session per tab, across its pages. If storage is off, page memory.
  var memory = {};
  function load(name) {
    try {
      var value = window.sessionStorage.getItem(PREFIX + name);
      if (value !== null) return value;
    } catch (e) {}
    return memory[name] || null;
  }
  function save(name, value) {
    memory[name] = value;
    try {
      if (value === null) window.sessionStorage.removeItem(PREFIX + name);
      else window.sessionStorage.setItem(PREFIX + name, value);
    } catch (e) {}
  }

  function uuid() {
    var c = window.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var b = c.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    var h = "";
    for (var i = 0; i < 16; i++) h += (b[i] + 256).toString(16).slice(1) + (i === 3 || i === 5 || i === 7 || i === 9 ? "-" : "");
    return h;
  }

  function session() {
    var id = load("session");
    if (!id) save("session", (id = uuid()));
    return id;
  }

  function warn(message) {
    if (window.console) window.console.warn("up.js: " + message);
  }

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function copy(source, skip) {
    var out = {};
    for (var name in source) if (Object.prototype.hasOwnProperty.call(source, name) && !skip[name]) out[name] = source[name];
    return out;
  }

  function push(item) {
    if (stopped) return;
    if (queue.length >= MAX_QUEUE) queue.shift();
    queue.push(item);
    if (!config.key) return; // sent once up.init gives a key
    if (queue.length >= MAX_BATCH) flush();
    else schedule(config.flushMs);
  }

  function schedule(delay) {
    if (!timer) timer = setTimeout(function () { timer = 0; flush(); }, delay);
  }

  // One request body for `items`; the kinds go to their own lists.
  function body(items) {
    var out = { api_key: config.key, sent_at: new Date().toISOString(), events: [] };
    for (var i = 0; i < items.length; i++) {
      var kind = items[i].kind, list = kind === "event" ? "events" : kind === "person" ? "people" : "accounts";
      (out[list] = out[list] || []).push(items[i].data);
    }
    return JSON.stringify(out);
  }

  function retry(items, retryAfter) {
    queue = items.concat(queue).slice(-MAX_QUEUE);
    failures++;
    var seconds = parseFloat(retryAfter);
    var delay = seconds >= 0 ? seconds * 1000 : Math.min(MAX_DELAY_MS, 1000 * Math.pow(2, failures - 1));
    clearTimeout(timer);
    timer = 0;
    // Jitter, so a fleet of pages does not come back at the same instant.
    schedule(Math.min(MAX_DELAY_MS, delay) * (0.75 + Math.random() / 2));
  }

  function refused(response) {
    return response.json().then(
      function (answer) { return answer && answer.detail; },
      function () { return null; }
    ).then(function (detail) {
      var status = response.status;
      warn("the platform refused " + (status === 401 || status === 403 ? "the key" : "a batch") + " (" + status + "): " + (detail || response.statusText));
      if (status === 401 || status === 403) {
        stopped = true; // a wrong key or an origin not on the key's list: retrying cannot help
        queue = [];
      }
    });
  }

  function flush() {
    clearTimeout(timer);
    timer = 0;
    if (inFlight || stopped || !config.key || !queue.length) return;
    var items = (inFlight = queue.splice(0, MAX_BATCH));
    var payload = body(items);
    window.fetch(config.endpoint, {
      method: "POST",
      body: payload,
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      credentials: "omit",
      keepalive: payload.length < BEACON_BYTES
    }).then(function (response) {
      inFlight = null;
      if (response.status === 429 || response.status >= 500) return retry(items, response.headers.get("Retry-After"));
      failures = 0;
      if (queue.length) schedule(queue.length >= MAX_BATCH ? 0 : config.flushMs);
      if (!response.ok) return refused(response);
    }, function () {
      inFlight = null;
      retry(items);
    });
  }

  // Hidden or leaving (a hidden page may be discarded unannounced): the browser sends it all.
  function beacon() {
    if (stopped || !config.key) return;
    var items = (inFlight || []).concat(queue);
    queue = [];
    clearTimeout(timer);
    timer = 0;
    var start = 0;
    while (start < items.length) {
      var end = Math.min(items.length, start + MAX_BATCH), payload = body(items.slice(start, end));
      while (payload.length > BEACON_BYTES && end - start > 1) payload = body(items.slice(start, (end = start + Math.ceil((end - start) / 2))));
      var sent = navigator.sendBeacon && navigator.sendBeacon(config.endpoint, new Blob([payload], { type: "text/plain;charset=UTF-8" }));
      if (!sent) {
        queue = queue.concat(items.slice(start)); // over the browser's quota: try again on return
        return;
      }
      start = end;
    }
  }

  function track(feature, props) {
    if (typeof feature !== "string" || !feature) return warn("track needs a feature name");
    var event = {
      uuid: uuid(),
      feature: feature,
      session_id: session(),
      timestamp: new Date().toISOString(),
      metadata: isObject(props) ? copy(props, { event_type: 1 }) : {}
    };
    var user = load("user");
    if (user) event.user_id = user;
    if (isObject(props) && typeof props.event_type === "string") event.event_type = props.event_type;
    push({ kind: "event", data: event });
  }

  // traits: email, age and gender are the end user's own fields; the rest are properties.
  function identify(userId, traits) {
    if (userId === undefined || userId === null || userId === "") return warn("identify needs a user id");
    userId = String(userId);
    save("user", userId);
    var person = { user_id: userId }, t = isObject(traits) ? traits : {};
    var fields = { email: 1, age: 1, gender: 1 };
    for (var name in fields) if (t[name] !== undefined && t[name] !== null) person[name] = t[name];
    var properties = copy(t, fields);
    for (name in properties) { person.properties = properties; break; }
    var account = load("account");
    if (account) person.account_id = account;
    push({ kind: "person", data: person });
  }

  // The end user's account (the customer company). traits: name; the rest are properties.
  function group(accountId, traits) {
    if (accountId === undefined || accountId === null || accountId === "") return warn("group needs an account id");
    accountId = String(accountId);
    save("account", accountId);
    var account = { account_id: accountId }, t = isObject(traits) ? traits : {};
    if (typeof t.name === "string") account.name = t.name;
    var properties = copy(t, { name: 1 });
    for (var name in properties) { account.properties = properties; break; }
    push({ kind: "account", data: account });
    var user = load("user");
    if (user) push({ kind: "person", data: { user_id: user, account_id: accountId } });
  }

  // Sign-out: the next events are anonymous and start a new session.
  function reset() {
    save("user", null);
    save("account", null);
    save("session", null);
  }

  function page() {
    var path = location.pathname;
    if (path === lastPath) return;
    lastPath = path;
    track("page_view", { event_type: "pageview", path: path, url: location.href, title: document.title, referrer: document.referrer || null });
  }

  function watchPages() {
    page();
    // Single-page apps change the URL without loading a page.
    var pushState = history.pushState;
    history.pushState = function () {
      var result = pushState.apply(this, arguments);
      page();
      return result;
    };
    window.addEventListener("popstate", page);
  }

  // up.init({key, host, pageviews}) for pages that load the script without data- attributes.
  function init(options) {
    options = options || {};
    var host = options.host || (script && script.src ? new URL(script.src, location.href).origin : location.origin);
    config.key = options.key || config.key;
    config.endpoint = String(host).replace(/\/+$/, "") + "/api/v1/events/batch";
    if (options.flushInterval >= 0) config.flushMs = options.flushInterval;
    if (!config.key) return warn("no API key: set data-key on the script tag or call up.init({key: …})");
    if (options.pageviews) watchPages();
    if (queue.length) schedule(0);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") beacon();
  });
  window.addEventListener("pagehide", beacon);

  window.up = { init: init, track: track, identify: identify, group: group, reset: reset, page: page, flush: flush };

  var attr = function (name) { return script ? script.getAttribute(name) : null; };
  if (attr("data-key")) init({ key: attr("data-key"), host: attr("data-host"), pageviews: script.hasAttribute("data-pageviews") });
  // Calls made before the script ran: window.up = [["track", "x"], …] (docs/sdks.md's stub).
  if (Array.isArray(existing)) for (var i = 0; i < existing.length; i++) window.up[existing[i][0]].apply(null, existing[i].slice(1));
})(window, document);
