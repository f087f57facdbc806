//! The embedded web client: the call page and the messenger (one `index.html` that shows
//! whichever the URL asks for), the watch page (`/watch/{room}`), their styles, their entry
//! scripts (`/app.js`, `/chat.js`, `/watch.js`) and the ES modules under `/js/` those import.
//! Everything is compiled into the binary (nothing is read from disk at run time) and served
//! with `Cache-Control: no-cache`.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

const INDEX: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");
const CHAT_JS: &str = include_str!("../web/chat.js");
const CHAT_CSS: &str = include_str!("../web/chat.css");
const WATCH_HTML: &str = include_str!("../web/watch.html");
const WATCH_JS: &str = include_str!("../web/watch.js");
const WATCH_CSS: &str = include_str!("../web/watch.css");

const JS: &str = "text/javascript; charset=utf-8";

/// The modules under `/js/`, by path below it (web/js/ in the source tree).
const MODULES: &[(&str, &str)] = &[
    ("call/publish.js", include_str!("../web/js/call/publish.js")),
    ("call/state.js", include_str!("../web/js/call/state.js")),
    ("call/stats.js", include_str!("../web/js/call/stats.js")),
    ("call/status.js", include_str!("../web/js/call/status.js")),
    ("call/tiles.js", include_str!("../web/js/call/tiles.js")),
    ("chat/account.js", include_str!("../web/js/chat/account.js")),
    ("chat/chats.js", include_str!("../web/js/chat/chats.js")),
    ("chat/events.js", include_str!("../web/js/chat/events.js")),
    ("chat/friends.js", include_str!("../web/js/chat/friends.js")),
    ("chat/link.js", include_str!("../web/js/chat/link.js")),
    ("chat/notice.js", include_str!("../web/js/chat/notice.js")),
    (
        "chat/profiles.js",
        include_str!("../web/js/chat/profiles.js"),
    ),
    ("chat/search.js", include_str!("../web/js/chat/search.js")),
    ("chat/state.js", include_str!("../web/js/chat/state.js")),
    ("chat/uploads.js", include_str!("../web/js/chat/uploads.js")),
    ("chat/views.js", include_str!("../web/js/chat/views.js")),
    ("dom.js", include_str!("../web/js/dom.js")),
    ("rest.js", include_str!("../web/js/rest.js")),
    ("socket.js", include_str!("../web/js/socket.js")),
    ("store.js", include_str!("../web/js/store.js")),
    ("tokens.js", include_str!("../web/js/tokens.js")),
    ("watch/access.js", include_str!("../web/js/watch/access.js")),
    ("watch/clock.js", include_str!("../web/js/watch/clock.js")),
    ("watch/create.js", include_str!("../web/js/watch/create.js")),
    ("watch/drift.js", include_str!("../web/js/watch/drift.js")),
    ("watch/status.js", include_str!("../web/js/watch/status.js")),
];

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}
pub async fn app_js() -> Response {
    asset(JS, APP_JS)
}
pub async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}
pub async fn chat_js() -> Response {
    asset(JS, CHAT_JS)
}
pub async fn chat_css() -> Response {
    asset("text/css; charset=utf-8", CHAT_CSS)
}
/// `/watch/{room}`: the watch page (it reads the room from its own URL; `new` creates one).
pub async fn watch_page() -> Response {
    asset("text/html; charset=utf-8", WATCH_HTML)
}
pub async fn watch_js() -> Response {
    asset(JS, WATCH_JS)
}
pub async fn watch_css() -> Response {
    asset("text/css; charset=utf-8", WATCH_CSS)
}

/// `/js/{*file}`: one of the shared modules, or a JSON 404.
pub async fn module(Path(file): Path<String>) -> Response {
    match MODULES.iter().find(|(name, _)| *name == file) {
        Some((_, body)) => asset(JS, body),
        None => ApiError::NotFound("no such script".into()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn served() -> BTreeSet<String> {
        let mut all: BTreeSet<String> = MODULES.iter().map(|(n, _)| format!("/js/{n}")).collect();
        all.extend(["/app.js", "/chat.js", "/watch.js"].map(String::from));
        all
    }

    fn source(url: &str) -> &'static str {
        match url {
            "/app.js" => APP_JS,
            "/chat.js" => CHAT_JS,
            "/watch.js" => WATCH_JS,
            _ => MODULES
                .iter()
                .find(|(n, _)| format!("/js/{n}") == url)
                .map(|(_, b)| *b)
                .unwrap(),
        }
    }

    /// `./x.js` and `../x.js` against the importing script's URL.
    fn resolve(from: &str, spec: &str) -> String {
        let mut parts: Vec<&str> = from.split('/').collect();
        parts.pop();
        for seg in spec.split('/') {
            match seg {
                "." => {}
                ".." => {
                    parts.pop();
                }
                s => parts.push(s),
            }
        }
        parts.join("/")
    }

    #[test]
    fn every_module_on_disk_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/js");
        let mut on_disk = BTreeSet::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "js") {
                    let rel = p
                        .strip_prefix(&dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    on_disk.insert(rel);
                }
            }
        }
        let listed: BTreeSet<String> = MODULES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(on_disk, listed, "web/js and MODULES disagree");
    }

    #[test]
    fn every_import_resolves_to_a_served_script() {
        let served = served();
        let mut checked = 0;
        for url in &served {
            for line in source(url).lines() {
                let Some(rest) = line.split(" from \"").nth(1) else {
                    continue;
                };
                let spec = rest.split('"').next().unwrap();
                let target = resolve(url, spec);
                assert!(
                    served.contains(&target),
                    "{url} imports {spec} ({target}), which is not served"
                );
                checked += 1;
            }
        }
        assert!(checked > 20, "found only {checked} imports");
    }

    #[tokio::test]
    async fn unknown_modules_get_a_json_404() {
        let r = module(Path("nope.js".into())).await;
        assert_eq!(r.status(), 404);
        let r = module(Path("dom.js".into())).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CONTENT_TYPE], JS);
    }
}
