// One REST call to /api: a JSON body (or a raw Blob, for uploads) in, JSON out. A failure is an
// ApiError carrying the HTTP status and the server's error code and message (docs/protocol.md).

export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// `token` (optional) goes in `Authorization: Bearer`; `headers` are added as given.
export async function request(method, path, body, token, headers) {
  const h = Object.assign({}, headers || {});
  if (token) h.Authorization = "Bearer " + token;
  let payload;
  if (body instanceof Blob) payload = body;
  else if (body !== undefined) { h["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  let r;
  try {
    r = await fetch(path, { method, headers: h, body: payload });
  } catch (e) {
    throw new ApiError(0, "network", "cannot reach the server");
  }
  const text = r.status === 204 ? "" : await r.text().catch(() => "");
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
  if (!r.ok) {
    const code = (data && data.error) || "http_" + r.status;
    throw new ApiError(r.status, code, (data && data.message) || `${r.status} ${r.statusText || code}`);
  }
  return data;
}

// The grants inside a JWT (its payload is base64url JSON); the server checks them anyway.
export function tokenGrants(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload));
  } catch (e) {
    return {};
  }
}
