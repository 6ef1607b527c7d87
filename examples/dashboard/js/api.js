// The host's REST API, called with the session cookie (which this script cannot read). The
// CSRF token from `/api/session` goes into `X-CSRF-Token` on every change. An expired
// access token is refreshed once (one refresh at a time across every tab of this origin,
// since a refresh token is single use) and the call retried.

let csrf = null;
let session = null;

/** An API answer that was not 2xx: `status`, and the problem document's `detail`. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

/** The current session (`null` until `loadSession` succeeds). */
export function currentSession() {
  return session;
}

/** Reads who is signed in; `null` when nobody is (after trying a refresh). */
export async function loadSession() {
  try {
    session = await request("GET", "/api/session");
    csrf = session.csrf_token;
    return session;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      session = null;
      return null;
    }
    throw e;
  }
}

/** Signs in; returns the session or throws an `ApiError`. */
export async function signIn(tenant, email, password) {
  const s = await raw("POST", "/api/session", {tenant, email, password});
  session = s;
  csrf = s.csrf_token;
  return s;
}

/** Ends the session on the server and forgets it here. */
export async function signOut() {
  try {
    await raw("DELETE", "/api/session");
  } finally {
    session = null;
    csrf = null;
  }
}

/** Refreshes the tokens, one refresh at a time across tabs. True when signed in after. */
let refreshing = null;
export function refresh() {
  if (!refreshing) {
    refreshing = withLock(async () => {
      // Another tab may have refreshed while this one waited: the cookie is then new.
      try {
        const s = await raw("GET", "/api/session");
        session = s;
        csrf = s.csrf_token;
        return true;
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 401) throw e;
      }
      try {
        const s = await raw("POST", "/api/session/refresh");
        session = s;
        csrf = s.csrf_token;
        return true;
      } catch (e) {
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) return false;
        throw e;
      }
    }).finally(() => { refreshing = null; });
  }
  return refreshing;
}

function withLock(fn) {
  if (navigator.locks?.request) return navigator.locks.request("ate-session-refresh", fn);
  return fn();
}

async function raw(method, path, body) {
  const headers = {accept: "application/json"};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (csrf && method !== "GET" && method !== "HEAD") headers["x-csrf-token"] = csrf;
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  if (r.status === 204) return null;
  const type = r.headers.get("content-type") || "";
  const data = type.includes("json") ? await r.json().catch(() => null) : await r.text();
  if (!r.ok) throw new ApiError(r.status, typeof data === "object" ? data : {detail: data});
  return data;
}

/** Signals that the session is gone (the app shows the sign-in page). */
export const sessionEnded = new EventTarget();

/** Calls the API; an expired token is refreshed once and the call repeated. */
export async function request(method, path, body) {
  try {
    return await raw(method, path, body);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401 || path.startsWith("/api/session")) throw e;
    if (await refresh()) return raw(method, path, body);
    session = null;
    sessionEnded.dispatchEvent(new Event("ended"));
    throw e;
  }
}

export const get = (path) => request("GET", path);
export const post = (path, body = {}) => request("POST", path, body);
export const put = (path, body) => request("PUT", path, body);
export const del = (path) => request("DELETE", path);

/** A query string from an object, leaving out empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/**
 * Follows a Server-Sent Events stream: `onEvent(name, data)` for each event named in
 * `names`. Reconnects (refreshing the session when it has expired) until `close()`; the
 * first event after each connect is the whole state, so nothing is lost. `onState` hears
 * "live" and "reconnecting".
 */
export function follow(path, names, onEvent, onState = () => {}) {
  let source = null;
  let closed = false;
  let delay = 500;
  const open = () => {
    if (closed) return;
    source = new EventSource(path, {withCredentials: true});
    for (const name of names) {
      source.addEventListener(name, (ev) => {
        delay = 500;
        onState("live");
        let data;
        try { data = JSON.parse(ev.data); } catch { return; }
        onEvent(name, data);
      });
    }
    source.onerror = async () => {
      source.close();
      if (closed) return;
      onState("reconnecting");
      // The stream may have failed because the access token expired.
      try {
        if (!(await refresh())) {
          closed = true;
          sessionEnded.dispatchEvent(new Event("ended"));
          return;
        }
      } catch { /* offline or the host restarting: retry below */ }
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
  return {close() { closed = true; source?.close(); }};
}
