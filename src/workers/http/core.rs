//! Handlers of the core API: login, logout, profile, notifications, discover,
//! status (facts sections 2 to 4).

use std::net::IpAddr;
use std::time::Instant;

use serde_json::{json, Value};
use tracing::{error, info, warn};

use super::login_guard::FAILURE_DELAY;
use super::state::AppState;
use crate::api::ApiError;
use crate::api::{string_param, Call, Caller, Handled, Reply};
use crate::ipc::messages::{ProbeCall, ProbeReply};
use crate::store::{notifications, sessions};
use crate::users;

/// `POST /login`.
pub async fn login(
    state: &AppState,
    peer: IpAddr,
    body: &Value,
    received: Instant,
) -> Result<Value, ApiError> {
    let username = string_param(body, "username", users::valid_username)?.to_string();
    let password = string_param(body, "password", users::valid_password)?.to_string();
    let attempt = state
        .guard
        .begin(peer)
        .await
        .map_err(ApiError::TooManyRequests)?;
    let Some(path) = state.ctx.settings().config.temboard.users.clone() else {
        // Only 9.x signed requests are configured: no 2.x user can log in.
        info!("login for user '{username}' from {peer} refused: [temboard] users is not set (2.x logins off)");
        drop(attempt);
        tokio::time::sleep_until((received + FAILURE_DELAY).into()).await;
        return Err(ApiError::NotFoundMessage("Invalid username/password."));
    };
    // An Argon2id check costs ~20 ms of CPU and 19 MiB: a few at a time
    // (across all addresses), off the runtime threads.
    let slot = state
        .password_checks
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(format!("password check slots: {e}")))?;
    let (warnings, right) = tokio::task::spawn_blocking({
        let (path, username, password) = (path.clone(), username.clone(), password);
        move || {
            users::load(&path).map(|file| {
                let right = users::check(&file, &username, &password);
                (file.warnings, right)
            })
        }
    })
    .await
    .map_err(|e| ApiError::Internal(format!("users file task: {e}")))?
    .map_err(|e| {
        error!("cannot read users file {}: {e}", path.display());
        ApiError::Internal(format!("users file {}: {e}", path.display()))
    })?;
    drop(slot);
    for w in &warnings {
        warn!("{w}");
    }
    if !right {
        attempt.failed();
        info!("failed login for user '{username}' from {peer}");
        // Same answer time whatever failed, so timing tells nothing.
        tokio::time::sleep_until((received + FAILURE_DELAY).into()).await;
        return Err(ApiError::NotFoundMessage("Invalid username/password."));
    }
    attempt.succeeded();
    let ttl = state.ctx.settings().config.temboard.session_ttl as f64;
    let new_id =
        sessions::new_id().map_err(|e| ApiError::Internal(format!("OS random source: {e}")))?;
    let user = username.clone();
    let id = state
        .db
        .run({
            let cache = std::sync::Arc::clone(&state.sessions);
            move |c| {
                let id = sessions::login(c, &user, ttl, new_id);
                // The login may have dropped the oldest session.
                cache.clear();
                id
            }
        })
        .await?;
    info!("user '{username}' logged in from {peer}");
    Ok(json!({ "session": id }))
}

/// `GET /logout`.
pub async fn logout(state: &AppState, caller: Caller) -> Result<Value, ApiError> {
    let Caller { session, username } = caller;
    let ended = state
        .db
        .run({
            let cache = std::sync::Arc::clone(&state.sessions);
            move |c| {
                let ended = sessions::logout(c, &session, &username);
                cache.forget(&session);
                ended
            }
        })
        .await?;
    if !ended {
        return Err(ApiError::InvalidSession);
    }
    Ok(json!({ "logout": true }))
}

/// `GET /profile`.
pub fn profile(caller: &Caller) -> Value {
    json!({ "username": caller.username })
}

/// `GET /notifications`: all kept notifications, newest first.
pub async fn notifications(state: &AppState) -> Result<Value, ApiError> {
    let list = state
        .db
        .run(|c| notifications::list(c, notifications::MAX_ROWS))
        .await?;
    serde_json::to_value(list).map_err(|e| ApiError::Internal(e.to_string()))
}

/// `GET /agent/self`: the effective configuration with every secret
/// redacted, where each value came from, the workers as the supervisor sees
/// them, start and reload times and the last reload error.
pub fn agent_self(state: &AppState) -> Value {
    let s = state.ctx.settings();
    let sup = state.ctx.supervision();
    json!({
        "config": s.config.redacted(),
        "authentication": s.config.authentication(),
        "sources": s.sources,
        "workers": sup.workers,
        "generation": sup.generation,
        "last_reload_error": sup.last_reload_error,
        "start_datetime": s.runtime.start_datetime,
        "reload_datetime": s.runtime.reload_datetime,
        "supervisor_pid": s.runtime.supervisor_pid,
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// `GET /status`.
pub fn status(state: &AppState) -> Value {
    let s = state.ctx.settings();
    json!({
        "pid": s.runtime.supervisor_pid,
        "user": s.runtime.user,
        "start_datetime": s.runtime.start_datetime,
        "reload_datetime": s.runtime.reload_datetime,
        "configfile": s.config.configfile.display().to_string(),
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// `GET /discover`.
pub async fn discover(state: &AppState) -> Result<Value, ApiError> {
    let s = state.ctx.settings();
    let hostname = match &s.config.temboard.hostname {
        Some(h) => h.clone(),
        None => state.system_fqdn().await,
    };
    if !crate::host::is_fqdn(&hostname) {
        return Err(ApiError::ServerMessage(format!(
            "Invalid hostname '{hostname}': not a fully qualified domain name; set [temboard] hostname"
        )));
    }
    // Read at each request: the 2.x contract answers 500 while PostgreSQL
    // is down (9.x answers from memory, see `documents.rs`).
    let reply = state
        .pg_info
        .get(|| async {
            state
                .probe
                .call(ProbeCall::PgInfo, super::state::IPC_TIMEOUT)
                .await
                .map_err(|e| ApiError::from_call("probe", Err(e)))?
                .map_err(|e| ApiError::from_call("probe", Ok(e)))
        })
        .await?;
    let ProbeReply::PgInfo {
        version,
        port,
        data_directory,
        ..
    } = reply
    else {
        return Err(ApiError::Internal("unexpected probe reply".into()));
    };
    let summary: Vec<&str> = version.split(' ').take(2).collect();
    Ok(json!({
        "hostname": hostname,
        "cpu": crate::host::cpu_count(),
        "memory_size": crate::host::memory_bytes(),
        "pg_port": port,
        "pg_version": version,
        "pg_version_summary": summary.join(" "),
        "pg_data": data_directory,
        "plugins": s.config.temboard.plugins,
    }))
}

/// `POST /login` route.
pub fn route_login(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        login(c.state, c.peer, &c.body, c.received)
            .await
            .map(Reply::Json)
    })
}

/// `GET /logout` route.
pub fn route_logout(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { logout(c.state, c.caller()?.clone()).await.map(Reply::Json) })
}

/// `GET /profile` route.
pub fn route_profile(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { Ok(Reply::Json(profile(c.caller()?))) })
}

/// `GET /notifications` route.
pub fn route_notifications(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { notifications(c.state).await.map(Reply::Json) })
}

/// `GET /discover` route (2.x).
pub fn route_discover(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { discover(c.state).await.map(Reply::Json) })
}

/// `GET /status` route (2.x).
pub fn route_status(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { Ok(Reply::Json(status(c.state))) })
}

/// `GET /agent/self` route.
pub fn route_self(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { Ok(Reply::Json(agent_self(c.state))) })
}
