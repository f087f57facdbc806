//! The messenger's REST API under `/api`: accounts, sessions, profiles, friends, chats and
//! messages, plus the OpenAPI document that describes it (`GET /api/openapi.json`).
//!
//! Handlers are thin: they check the access token ([`Authed`]), parse the JSON body strictly
//! ([`ApiJson`]: unknown fields are errors), call [`messaging::Store`] and map its errors in one
//! place ([`ApiError`]). The OpenAPI document is generated from the handlers' `#[utoipa::path]`
//! attributes through `utoipa-axum`, so a route cannot exist without being described.
//!
//! Realtime delivery of what these routes change (new messages, edits, membership) happens on
//! the `/ws` messenger session; see docs/protocol.md.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use messaging::auth::Claims;
use messaging::{
    Chat, ChatId, ChatMember, ChatSummary, FriendRequestOutcome, Message, NewMessage, Profile,
    ProfileUpdate, Sent, Session, StoreError, UserId,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::{bearer_token, status_of, ApiError};
use crate::App;

/// How long an access token from login or refresh is valid.
pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);

/// How long a call token minted for a chat's call room is valid.
pub const CALL_TTL: Duration = Duration::from_secs(60 * 60);

/// The OpenAPI document's frame; the paths come from the routers in [`routes`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "GAX API",
        description = "Accounts, friends, chats, messages and watch parties of GAX. Every route but register, \
                       login and refresh takes `Authorization: Bearer <access token>`. Errors \
                       are JSON `{\"error\": code, \"message\": text}` with a stable code."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine code, e.g. `not_member`, `username_taken`, `bad_request`.
    pub error: String,
    /// What went wrong, for humans.
    pub message: String,
}

/// The REST routes and their OpenAPI description.
pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me, update_me))
        .routes(routes!(user))
        .routes(routes!(user_by_name))
        .routes(routes!(friends))
        .routes(routes!(request_friend))
        .routes(routes!(accept_friend))
        .routes(routes!(decline_friend))
        .routes(routes!(remove_friend))
        .routes(routes!(list_chats, create_chat))
        .routes(routes!(get_chat, rename_chat))
        .routes(routes!(add_member))
        .routes(routes!(remove_member))
        .routes(routes!(history, send_message))
        .routes(routes!(edit_message, delete_message))
        .routes(routes!(mark_read))
        .routes(routes!(chat_call))
        .routes(routes!(search))
        .routes(routes!(crate::http::healthz))
        .routes(routes!(crate::http::metrics))
        .routes(routes!(crate::http::dev_token))
        .routes(routes!(crate::ws::upgrade))
        .routes(routes!(crate::whip::publish))
        .routes(routes!(crate::whip::stop, crate::whip::trickle))
        .routes(routes!(crate::whip::play))
        .routes(routes!(
            crate::whip::stop_playing,
            crate::whip::trickle_playing
        ))
        .routes(routes!(crate::watch_api::create_room))
        .routes(routes!(crate::watch_api::get_room))
        .routes(routes!(crate::watch_api::set_member))
        .routes(routes!(crate::watch_api::share_link))
        .routes(routes!(crate::watch_api::control))
        .merge(crate::files::routes())
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_internal() {
            tracing::error!("store error: {e}");
            return ApiError::Internal("internal error".into());
        }
        ApiError::Coded {
            status: status_of(e.kind()),
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// A JSON body parsed strictly: malformed JSON, a wrong content type, missing or unknown
/// fields are a 400 with a JSON error, never a plain-text rejection.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::Coded {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "unsupported_media_type",
                message: "send the body as Content-Type: application/json".into(),
            }),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// The caller, from `Authorization: Bearer <access token>`: a user account (subject
/// `user:<id>`) whose token allows chat.
pub struct Authed {
    pub user: UserId,
    pub claims: Claims,
}

impl FromRequestParts<Arc<App>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers).ok_or_else(|| {
            ApiError::Unauthorized("send Authorization: Bearer <access token>".into())
        })?;
        let claims = app
            .tokens
            .verify(&token)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        let user = UserId::from_subject(&claims.sub)
            .ok_or_else(|| ApiError::Forbidden("this token is not for a user account".into()))?;
        if !claims.can_chat {
            return Err(ApiError::Forbidden("this token does not allow chat".into()));
        }
        Ok(Authed { user, claims })
    }
}

/// Who is asking, for login rate limiting: the peer address.
struct ClientKey(String);

impl<S: Send + Sync> FromRequestParts<S> for ClientKey {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Ok(ClientKey(ip.unwrap_or_else(|| "unknown".into())))
    }
}

// ---------------------------------------------------------------------------------------------
// Accounts and sessions

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3 to 32 characters of a-z, 0-9, `_`, `.`, `-` (case is kept, uniqueness ignores it).
    pub username: String,
    /// 8 to 1024 characters.
    pub password: String,
    /// Defaults to the username.
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// A signed-in session: a short-lived access token (JWT) and a refresh token to renew it.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub user: Profile,
    /// Send as `Authorization: Bearer` (and as `token` on `/ws`).
    pub access_token: String,
    /// Seconds the access token is valid.
    pub expires_in: u64,
    /// Opaque; exchange at `/api/auth/refresh`. Each refresh token works once.
    pub refresh_token: String,
    /// Unix milliseconds.
    pub refresh_expires_at: i64,
}

fn session_response(app: &App, session: Session) -> Result<TokenResponse, ApiError> {
    let claims = session.access_claims(ACCESS_TTL);
    let access_token = app
        .tokens
        .mint(&claims)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(TokenResponse {
        user: session.user,
        access_token,
        expires_in: ACCESS_TTL.as_secs(),
        refresh_token: session.refresh_token,
        refresh_expires_at: session.refresh_expires_at,
    })
}

/// Creates an account and signs it in.
#[utoipa::path(post, path = "/api/auth/register", tag = "accounts",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created and signed in", body = TokenResponse),
        (status = 400, description = "Invalid username, password or display name", body = ErrorBody),
        (status = 409, description = "Username taken", body = ErrorBody),
    ))]
async fn register(
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    // Check the display name first: a refusal must not leave an account behind.
    if let Some(name) = &req.display_name {
        messaging::validate::display_name(name)?;
    }
    let profile = app.store.register(&req.username, &req.password).await?;
    if let Some(name) = req.display_name {
        let update = ProfileUpdate {
            display_name: Some(name),
            ..Default::default()
        };
        app.store.update_profile(profile.id, update).await?;
    }
    let session = app.store.login(&req.username, &req.password).await?;
    app.user_changed(&session.user).await;
    Ok((StatusCode::CREATED, Json(session_response(&app, session)?)))
}

/// Signs in with a password. Wrong username and wrong password get the same answer in the
/// same time; repeated failures per username and per client are rate limited.
#[utoipa::path(post, path = "/api/auth/login", tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 429, description = "Too many failures; retry later", body = ErrorBody),
    ))]
async fn login(
    State(app): State<Arc<App>>,
    ClientKey(client): ClientKey,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let session = app
        .store
        .login_limited(&app.limiter, &client, &req.username, &req.password)
        .await?;
    Ok(Json(session_response(&app, session)?))
}

/// Exchanges a refresh token for a new access token and a new refresh token. A refresh token
/// works once: presenting a used one ends the whole session.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "accounts",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Invalid, expired, revoked or reused refresh token", body = ErrorBody),
    ))]
async fn refresh(
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let session = app.store.refresh(&req.refresh_token).await?;
    Ok(Json(session_response(&app, session)?))
}

/// Ends the session of a refresh token (signs out).
#[utoipa::path(post, path = "/api/auth/logout", tag = "accounts",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Invalid refresh token", body = ErrorBody),
    ))]
async fn logout(
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    app.store.logout(&req.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Profiles

/// The caller's profile.
#[utoipa::path(get, path = "/api/me", tag = "profiles", security(("bearer" = [])),
    responses((status = 200, body = Profile), (status = 401, body = ErrorBody)))]
async fn me(State(app): State<Arc<App>>, me: Authed) -> Result<Json<Profile>, ApiError> {
    Ok(Json(app.store.profile(me.user).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// 1 to 64 characters.
    #[serde(default)]
    pub display_name: Option<String>,
    /// 0 to 500 characters.
    #[serde(default)]
    pub bio: Option<String>,
    /// A file id, or `null` to remove the avatar; absent leaves it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar_file_id: Option<Option<String>>,
}

/// Absent -> `None`, `null` -> `Some(None)`, a value -> `Some(Some(v))`.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes the caller's profile; absent fields stay as they are.
#[utoipa::path(patch, path = "/api/me", tag = "profiles", security(("bearer" = [])),
    request_body = ProfilePatch,
    responses((status = 200, body = Profile), (status = 400, body = ErrorBody)))]
async fn update_me(
    State(app): State<Arc<App>>,
    me: Authed,
    ApiJson(patch): ApiJson<ProfilePatch>,
) -> Result<Json<Profile>, ApiError> {
    let update = ProfileUpdate {
        display_name: patch.display_name,
        avatar_file_id: patch.avatar_file_id,
        bio: patch.bio,
    };
    let profile = app.store.update_profile(me.user, update).await?;
    app.user_changed(&profile).await;
    Ok(Json(profile))
}

/// A user's profile by id.
#[utoipa::path(get, path = "/api/users/{id}", tag = "profiles", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = Profile), (status = 404, body = ErrorBody)))]
async fn user(
    State(app): State<Arc<App>>,
    _me: Authed,
    Path(id): Path<i64>,
) -> Result<Json<Profile>, ApiError> {
    Ok(Json(app.store.profile(UserId(id)).await?))
}

/// A user's profile by username (case ignored).
#[utoipa::path(get, path = "/api/users/by-name/{username}", tag = "profiles",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = Profile), (status = 404, body = ErrorBody)))]
async fn user_by_name(
    State(app): State<Arc<App>>,
    _me: Authed,
    Path(username): Path<String>,
) -> Result<Json<Profile>, ApiError> {
    Ok(Json(app.store.find_user(&username).await?))
}

// ---------------------------------------------------------------------------------------------
// Friends

#[derive(Serialize, ToSchema)]
pub struct FriendLists {
    pub friends: Vec<Profile>,
    /// Requests others sent you.
    pub incoming: Vec<Profile>,
    /// Requests you sent.
    pub outgoing: Vec<Profile>,
}

/// Friends and pending requests.
#[utoipa::path(get, path = "/api/friends", tag = "friends", security(("bearer" = [])),
    responses((status = 200, body = FriendLists)))]
async fn friends(State(app): State<Arc<App>>, me: Authed) -> Result<Json<FriendLists>, ApiError> {
    Ok(Json(FriendLists {
        friends: app.store.friends(me.user).await?,
        incoming: app.store.incoming_friend_requests(me.user).await?,
        outgoing: app.store.outgoing_friend_requests(me.user).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct FriendRequestResult {
    pub outcome: FriendRequestOutcome,
}

/// Asks a user to be friends (if they already asked you, you are friends at once).
#[utoipa::path(post, path = "/api/friends/{id}/request", tag = "friends",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = FriendRequestResult), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn request_friend(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(id): Path<i64>,
) -> Result<Json<FriendRequestResult>, ApiError> {
    let outcome = app.store.request_friend(me.user, UserId(id)).await?;
    app.friends_changed(me.user, UserId(id)).await;
    Ok(Json(FriendRequestResult { outcome }))
}

/// Accepts a user's friend request.
#[utoipa::path(post, path = "/api/friends/{id}/accept", tag = "friends",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn accept_friend(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    app.store.accept_friend(me.user, UserId(id)).await?;
    app.friends_changed(me.user, UserId(id)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Declines a user's friend request.
#[utoipa::path(post, path = "/api/friends/{id}/decline", tag = "friends",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn decline_friend(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    app.store.decline_friend(me.user, UserId(id)).await?;
    app.friends_changed(me.user, UserId(id)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a friend, or withdraws a request you sent.
#[utoipa::path(delete, path = "/api/friends/{id}", tag = "friends",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn remove_friend(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    match app.store.remove_friend(me.user, UserId(id)).await {
        Ok(()) => {}
        Err(StoreError::NotFriends) => {
            app.store.cancel_friend_request(me.user, UserId(id)).await?;
        }
        Err(e) => return Err(e.into()),
    }
    app.friends_changed(me.user, UserId(id)).await;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Chats

/// A new chat: a direct chat with one user, or a group.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NewChat {
    /// Opens (or returns the existing) direct chat with `user`.
    Direct { user: i64 },
    /// Creates a group you administer.
    Group {
        title: String,
        #[serde(default)]
        members: Vec<i64>,
    },
}

/// The caller's chats, most recently active first, with unread counts.
#[utoipa::path(get, path = "/api/chats", tag = "chats", security(("bearer" = [])),
    responses((status = 200, body = Vec<ChatSummary>)))]
async fn list_chats(
    State(app): State<Arc<App>>,
    me: Authed,
) -> Result<Json<Vec<ChatSummary>>, ApiError> {
    Ok(Json(app.store.list_chats(me.user).await?))
}

/// Opens a direct chat or creates a group.
#[utoipa::path(post, path = "/api/chats", tag = "chats", security(("bearer" = [])),
    request_body = NewChat,
    responses((status = 201, body = Chat), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn create_chat(
    State(app): State<Arc<App>>,
    me: Authed,
    ApiJson(req): ApiJson<NewChat>,
) -> Result<(StatusCode, Json<Chat>), ApiError> {
    let chat = match req {
        NewChat::Direct { user } => app.store.open_direct_chat(me.user, UserId(user)).await?,
        NewChat::Group { title, members } => {
            let members: Vec<UserId> = members.into_iter().map(UserId).collect();
            app.store.create_group(me.user, &title, &members).await?
        }
    };
    app.chat_changed(me.user, chat.id).await;
    Ok((StatusCode::CREATED, Json(chat)))
}

#[derive(Serialize, ToSchema)]
pub struct ChatDetails {
    pub chat: Chat,
    pub members: Vec<ChatMember>,
}

/// A chat you are a member of, with its members and their read marks.
#[utoipa::path(get, path = "/api/chats/{chat}", tag = "chats", security(("bearer" = [])),
    params(("chat" = i64, Path)),
    responses((status = 200, body = ChatDetails), (status = 403, body = ErrorBody)))]
async fn get_chat(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(chat): Path<i64>,
) -> Result<Json<ChatDetails>, ApiError> {
    let chat = ChatId(chat);
    Ok(Json(ChatDetails {
        chat: app.store.chat(me.user, chat).await?,
        members: app.store.chat_members(me.user, chat).await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameChat {
    pub title: String,
}

/// Renames a group (group admins).
#[utoipa::path(patch, path = "/api/chats/{chat}", tag = "chats", security(("bearer" = [])),
    params(("chat" = i64, Path)), request_body = RenameChat,
    responses((status = 200, body = Chat), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn rename_chat(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(chat): Path<i64>,
    ApiJson(req): ApiJson<RenameChat>,
) -> Result<Json<Chat>, ApiError> {
    let chat = app
        .store
        .rename_group(me.user, ChatId(chat), &req.title)
        .await?;
    app.chat_changed(me.user, chat.id).await;
    Ok(Json(chat))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub user: i64,
}

/// Adds a member to a group (group admins).
#[utoipa::path(post, path = "/api/chats/{chat}/members", tag = "chats",
    security(("bearer" = [])), params(("chat" = i64, Path)), request_body = AddMember,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_member(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(chat): Path<i64>,
    ApiJson(req): ApiJson<AddMember>,
) -> Result<StatusCode, ApiError> {
    app.store
        .add_member(me.user, ChatId(chat), UserId(req.user))
        .await?;
    app.chat_changed(me.user, ChatId(chat)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a member from a group (group admins), or leaves it when `user` is you.
#[utoipa::path(delete, path = "/api/chats/{chat}/members/{user}", tag = "chats",
    security(("bearer" = [])), params(("chat" = i64, Path), ("user" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_member(
    State(app): State<Arc<App>>,
    me: Authed,
    Path((chat, user)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    let (chat, user) = (ChatId(chat), UserId(user));
    if user == me.user {
        app.store.leave_chat(me.user, chat).await?;
    } else {
        app.store.remove_member(me.user, chat, user).await?;
    }
    app.chat_changed(me.user, chat).await;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Messages

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Newest first, messages with `seq` below this (default: the newest).
    pub before: Option<i64>,
    /// Oldest first, messages with `seq` above this (catching up). Excludes `before`.
    pub after: Option<i64>,
    /// 1 to 200, default 50.
    pub limit: Option<u32>,
}

/// A page of a chat's history: newest first before a cursor, or oldest first after one.
/// Deleted messages appear as tombstones so `seq` has no holes.
#[utoipa::path(get, path = "/api/chats/{chat}/messages", tag = "messages",
    security(("bearer" = [])), params(("chat" = i64, Path), HistoryQuery),
    responses((status = 200, body = Vec<Message>), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn history(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(chat): Path<i64>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Message>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    let chat = ChatId(chat);
    let page = match (q.before, q.after) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give `before` or `after`, not both".into(),
            ))
        }
        (before, None) => {
            app.store
                .messages_before(me.user, chat, before, limit)
                .await?
        }
        (None, Some(after)) => {
            app.store
                .messages_after(me.user, chat, after, limit)
                .await?
        }
    };
    Ok(Json(page))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// 1 to 4000 characters (may be empty with attachments).
    #[serde(default)]
    pub text: String,
    /// File ids.
    #[serde(default)]
    pub attachments: Vec<String>,
    /// Idempotency key: a retry with the same key returns the original message.
    #[serde(default)]
    pub client_key: Option<String>,
}

/// Sends a message. Answered only once it is durably stored; a retry with the same
/// `client_key` answers 200 with the original instead of storing a duplicate.
#[utoipa::path(post, path = "/api/chats/{chat}/messages", tag = "messages",
    security(("bearer" = [])), params(("chat" = i64, Path)), request_body = SendMessage,
    responses((status = 201, body = Sent), (status = 200, description = "A retry", body = Sent),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn send_message(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(chat): Path<i64>,
    ApiJson(req): ApiJson<SendMessage>,
) -> Result<(StatusCode, Json<Sent>), ApiError> {
    let sent = app
        .send(
            me.user,
            ChatId(chat),
            NewMessage {
                text: req.text,
                attachments: req.attachments,
                client_key: req.client_key,
            },
        )
        .await?;
    let status = match sent.duplicate {
        true => StatusCode::OK,
        false => StatusCode::CREATED,
    };
    Ok((status, Json(sent)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    pub text: String,
}

/// Edits one of your messages.
#[utoipa::path(patch, path = "/api/chats/{chat}/messages/{seq}", tag = "messages",
    security(("bearer" = [])), params(("chat" = i64, Path), ("seq" = i64, Path)),
    request_body = EditMessage,
    responses((status = 200, body = Message), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn edit_message(
    State(app): State<Arc<App>>,
    me: Authed,
    Path((chat, seq)): Path<(i64, i64)>,
    ApiJson(req): ApiJson<EditMessage>,
) -> Result<Json<Message>, ApiError> {
    let original = app.store.message(me.user, ChatId(chat), seq).await?;
    let edited = app
        .store
        .edit_message(me.user, original.id, &req.text)
        .await?;
    app.message_changed(&edited, false).await;
    Ok(Json(edited))
}

/// Deletes one of your messages (a tombstone keeps its `seq`).
#[utoipa::path(delete, path = "/api/chats/{chat}/messages/{seq}", tag = "messages",
    security(("bearer" = [])), params(("chat" = i64, Path), ("seq" = i64, Path)),
    responses((status = 200, body = Message), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_message(
    State(app): State<Arc<App>>,
    me: Authed,
    Path((chat, seq)): Path<(i64, i64)>,
) -> Result<Json<Message>, ApiError> {
    let original = app.store.message(me.user, ChatId(chat), seq).await?;
    let tombstone = app.store.delete_message(me.user, original.id).await?;
    app.message_changed(&tombstone, true).await;
    Ok(Json(tombstone))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// Everything up to this `seq` has been read.
    pub seq: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ReadMark {
    pub last_read_seq: i64,
}

/// Moves your read mark forward (never back).
#[utoipa::path(post, path = "/api/chats/{chat}/read", tag = "messages",
    security(("bearer" = [])), params(("chat" = i64, Path)), request_body = MarkRead,
    responses((status = 200, body = ReadMark), (status = 403, body = ErrorBody)))]
async fn mark_read(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(chat): Path<i64>,
    ApiJson(req): ApiJson<MarkRead>,
) -> Result<Json<ReadMark>, ApiError> {
    let last_read_seq = app.mark_read(me.user, ChatId(chat), req.seq).await?;
    Ok(Json(ReadMark { last_read_seq }))
}

/// A call in a chat: its room and a call token for it.
#[derive(Serialize, ToSchema)]
pub struct ChatCall {
    /// The call room of this chat (`chat-<id>`).
    pub room: String,
    /// A call token for that room (publish and subscribe).
    pub token: String,
    /// The call page, ready to open.
    pub url: String,
}

/// Starts (or joins) the call of a chat: members get a call token for the chat's room.
#[utoipa::path(post, path = "/api/chats/{chat}/call", tag = "chats",
    security(("bearer" = [])), params(("chat" = i64, Path)),
    responses((status = 200, body = ChatCall), (status = 403, body = ErrorBody)))]
async fn chat_call(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(chat): Path<i64>,
) -> Result<Json<ChatCall>, ApiError> {
    let chat = app.store.chat(me.user, ChatId(chat)).await?;
    let room = format!("chat-{}", chat.id);
    let claims = Claims::for_room(&me.claims.sub, me.claims.name.as_deref(), &room, CALL_TTL);
    let token = app
        .tokens
        .mint(&claims)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let url = format!("/?room={room}&token={token}&autojoin=1");
    Ok(Json(ChatCall { room, token, url }))
}

// ---------------------------------------------------------------------------------------------
// Search

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Words to find (every word must match, in any word form; English and Russian).
    pub q: String,
    /// 1 to 50, default 20.
    pub limit: Option<usize>,
}

/// One search result: what was found and where.
#[derive(Serialize, ToSchema)]
pub struct SearchHit {
    /// `user`, `chat`, `message` or `file`.
    pub kind: String,
    pub user: Option<UserId>,
    pub chat: Option<ChatId>,
    pub seq: Option<i64>,
    pub file_id: Option<String>,
    /// The matched text (a piece of it for long texts).
    pub snippet: String,
    pub score: f32,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
}

/// Searches users, your chats' titles and messages, and files you may see. Results never
/// include chats you are not (or no longer) a member of.
#[utoipa::path(get, path = "/api/search", tag = "search", security(("bearer" = [])),
    params(SearchQuery),
    responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody)))]
async fn search(
    State(app): State<Arc<App>>,
    me: Authed,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SearchResults>, ApiError> {
    use messaging::search::{Item, Viewer};
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if q.q.len() > 512 {
        return Err(ApiError::BadRequest(
            "the query is longer than 512 bytes".into(),
        ));
    }
    let limit = q.limit.unwrap_or(20).clamp(1, 50);
    let viewer = Viewer::load(&app.store, me.user).await?;
    let index = app.messenger.search.clone();
    let hits = tokio::task::spawn_blocking(move || index.search(&viewer, &q.q, limit))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let hits = hits
        .into_iter()
        .map(|h| {
            let mut hit = SearchHit {
                kind: String::new(),
                user: None,
                chat: None,
                seq: None,
                file_id: None,
                snippet: h.snippet.text,
                score: h.score,
            };
            match h.item {
                Item::User { user } => {
                    hit.kind = "user".into();
                    hit.user = Some(user);
                }
                Item::Chat { chat } => {
                    hit.kind = "chat".into();
                    hit.chat = Some(chat);
                }
                Item::Message {
                    chat, seq, sender, ..
                } => {
                    hit.kind = "message".into();
                    hit.chat = Some(chat);
                    hit.seq = Some(seq);
                    hit.user = Some(sender);
                }
                Item::File { file_id, owner } => {
                    hit.kind = "file".into();
                    hit.file_id = Some(file_id);
                    hit.user = Some(owner);
                }
            }
            hit
        })
        .collect();
    Ok(Json(SearchResults { hits }))
}
