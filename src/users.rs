//! The users file (`[temboard] users`): `username:hash` lines, with the 2.x
//! hash so existing files keep working.

use base64::Engine;
use sha2::{Digest, Sha512};

/// `base64(SHA-512(hex(password) ‖ SHA-512(username)))`, facts 3.2.
pub fn hash_password(username: &str, password: &str) -> String {
    let user_digest = Sha512::digest(username.as_bytes());
    let mut h = Sha512::new();
    h.update(hex(password.as_bytes()).as_bytes());
    h.update(user_digest);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_of_the_python_agent() {
        assert_eq!(
            hash_password("temboard", "password"),
            "XZ4F0k5TWSVaseLoUgK1ko5p6lSTouoLzjhST/9wQnpVmSVSmJM5HtsrkhLMQX11CER3K5S0Mq9Rq33D/BxVDg=="
        );
        assert_eq!(
            hash_password("alice", "alice"),
            "Xm4iJH8aQmXRvrsLy/fNbQU23K6/FlEVRhhPZKO2aHvYVGzCft+u7RXQ9Z48IyVtnS+n47UM3QUM4is0BVTPOA=="
        );
    }
}
