//! systemd readiness protocol (`Type=notify`): `READY=1` once the API answers,
//! `RELOADING=1` / `READY=1` around a reload, `STOPPING=1` on stop. A no-op
//! when `NOTIFY_SOCKET` is not set.

use std::os::unix::net::UnixDatagram;

/// Where to send notifications, if systemd asked for them.
pub struct Notifier {
    socket: Option<(UnixDatagram, String)>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (and removes it so workers do not inherit it).
    pub fn from_env() -> Notifier {
        let path = std::env::var("NOTIFY_SOCKET").ok();
        // SAFETY: the supervisor is single-threaded at this point.
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let socket = path.and_then(|p| UnixDatagram::unbound().ok().map(|s| (s, p)));
        Notifier { socket }
    }

    /// Sends one state line (e.g. `READY=1`).
    pub fn send(&self, state: &str) {
        let Some((sock, path)) = &self.socket else {
            return;
        };
        let result = if let Some(abstract_name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
                .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
        } else {
            sock.send_to(state.as_bytes(), path)
        };
        if let Err(e) = result {
            tracing::warn!("cannot notify systemd ({state}): {e}");
        }
    }
}
