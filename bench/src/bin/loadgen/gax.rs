//! Signaling to GAX over its standard doors: WHIP (`POST /whip/{room}`) to publish, WHEP
//! (`POST /whep/{room}/{participant}`) to play, `DELETE` on the session's Location to end.
//! The generator mints its own call tokens with the server's secret.

use std::time::Duration;

use anyhow::{bail, Context};
use messaging::auth::{Claims, TokenKeys};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use webrtc::peer_connection::RTCPeerConnection;

use crate::client;

/// A GAX server at `base` (http://host:port).
pub struct Gax {
    http: reqwest::Client,
    base: String,
    keys: TokenKeys,
}

/// A WHIP or WHEP session: its Location and the token that may end it.
pub struct Session {
    location: String,
    token: String,
}

impl Gax {
    pub fn new(base: &str, secret: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            secret.len() >= 32,
            "--jwt-secret must be the server's secret (at least 32 characters)"
        );
        Ok(Gax {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            keys: TokenKeys::from_secret(secret.as_bytes()),
        })
    }

    fn token(&self, room: &str, name: &str, publish: bool) -> anyhow::Result<String> {
        let mut claims = Claims::for_room(name, Some(name), room, Duration::from_secs(3600));
        claims.can_publish = publish;
        Ok(self.keys.mint(&claims)?)
    }

    /// POSTs `offer` to `path`; returns the answer and the session.
    async fn post(
        &self,
        path: &str,
        token: String,
        offer: String,
    ) -> anyhow::Result<(String, Session)> {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/sdp")
            .body(offer)
            .send()
            .await?;
        let status = res.status();
        let location = res
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.text().await?;
        if status != reqwest::StatusCode::CREATED {
            bail!("POST {path}: {status} {body}");
        }
        let location = location.context("no Location in the answer")?;
        Ok((body, Session { location, token }))
    }

    /// Publishes `pc`'s tracks into `room` over WHIP; returns the participant id players ask
    /// for, and the session.
    pub async fn publish(
        &self,
        pc: &RTCPeerConnection,
        room: &str,
        name: &str,
    ) -> anyhow::Result<(String, Session)> {
        let session = self
            .negotiate(pc, &format!("/whip/{room}"), self.token(room, name, true)?)
            .await?;
        // Location: /whip/{room}/{participant}-{session}
        let id = session
            .location
            .rsplit('/')
            .next()
            .and_then(|s| s.split('-').next())
            .context("unexpected WHIP Location")?
            .to_owned();
        Ok((id, session))
    }

    /// Plays `participant` in `room` on `pc` over WHEP, pinning `layer` if given.
    pub async fn play(
        &self,
        pc: &RTCPeerConnection,
        room: &str,
        participant: &str,
        name: &str,
        layer: Option<&str>,
    ) -> anyhow::Result<Session> {
        client::add_receivers(pc).await?;
        let query = layer.map_or(String::new(), |l| format!("?layer={l}"));
        self.negotiate(
            pc,
            &format!("/whep/{room}/{participant}{query}"),
            self.token(room, name, false)?,
        )
        .await
    }

    /// Makes `pc`'s offer, POSTs it to `path` and applies the answer: one WHIP/WHEP exchange.
    async fn negotiate(
        &self,
        pc: &RTCPeerConnection,
        path: &str,
        token: String,
    ) -> anyhow::Result<Session> {
        let offer = client::local_offer(pc).await?;
        let (answer, session) = self.post(path, token, offer).await?;
        client::remote_answer(pc, answer).await?;
        Ok(session)
    }

    /// Ends a session (`DELETE` on its Location); returns the HTTP status.
    pub async fn end(&self, session: &Session) -> anyhow::Result<u16> {
        let res = self
            .http
            .delete(format!("{}{}", self.base, session.location))
            .header(AUTHORIZATION, format!("Bearer {}", session.token))
            .send()
            .await?;
        Ok(res.status().as_u16())
    }
}
