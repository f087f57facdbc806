// Who the watch page acts as: the URL's token (a share link, or a test), else the signed-in
// messenger user's access token; and REST calls made with it.

import { request } from "../rest.js";
import { storedAccessToken } from "../tokens.js";

export const params = new URLSearchParams(location.search);

export function token() {
  if (params.get("token")) return params.get("token");
  return storedAccessToken();
}

export const api = (method, path, body, headers) => request(method, path, body, token(), headers);
