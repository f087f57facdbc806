//! Signed, time-limited links to a file: a JWT of the one token model whose subject is
//! `file:<id>` and whose `exp` ends the link ([`App::signed_file_url`], [`check_link`]). A
//! link is minted only for someone who may read the file, and needs no header, so a `<video>`
//! or `<img>` tag can use it.

use std::time::Duration;

use axum::http::StatusCode;
use messaging::auth::{Claims, TokenError};

use crate::app::App;
use crate::error::ApiError;

/// The subject of a link token for file `id`.
pub(crate) fn link_subject(id: &str) -> String {
    format!("file:{id}")
}

pub(crate) fn check_link(app: &App, id: &str, link: &str) -> Result<(), ApiError> {
    let claims = app.tokens.verify(link).map_err(|e| ApiError::Coded {
        status: StatusCode::FORBIDDEN,
        code: if e == TokenError::Expired {
            "link_expired"
        } else {
            "link_invalid"
        },
        message: format!("the link is not valid: {e}"),
    })?;
    if claims.sub != link_subject(id) {
        return Err(ApiError::Coded {
            status: StatusCode::FORBIDDEN,
            code: "link_invalid",
            message: "the link is for another file".into(),
        });
    }
    Ok(())
}

impl App {
    /// A signed download path for file `id`, valid for `ttl`: `/api/files/{id}?link=<token>`.
    /// The caller must have checked that whoever gets it may read the file.
    pub fn signed_file_url(&self, id: &str, ttl: Duration) -> Result<(String, u64), ApiError> {
        let mut claims = Claims::for_user(&link_subject(id), None, ttl);
        claims.can_publish = false;
        claims.can_subscribe = false;
        claims.can_chat = false;
        claims.can_upload = false;
        let token = self
            .tokens
            .mint(&claims)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok((format!("/api/files/{id}?link={token}"), claims.exp))
    }
}
